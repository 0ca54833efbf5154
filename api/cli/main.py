"""The ``kvdb`` command: ``serve`` runs a node; the other commands talk to one over HTTP.

Exit status: 0 on success, 1 when the key is not found or the server reports an error, 2 for
bad usage or configuration.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kvdb import KvdbError, Version

from ..client import DEFAULT_URL, Client, ClientError, Item, WatchError
from ..errors import ConfigError
from ..settings import load_settings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"kvdb: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except (ClientError, KvdbError, WatchError) as exc:
        print(f"kvdb: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kvdb", description="kvdb: a key-value database whose every write is a change event"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run a node (default: ./kvdb-data on 127.0.0.1:8080)")
    serve.add_argument("--config", type=Path, help="YAML config file (see config/kvdb.yaml)")
    serve.add_argument("--data-dir", type=Path, help="LMDB data directory")
    serve.add_argument("--host", help="address to listen on")
    serve.add_argument("--port", type=int, help="port to listen on (0 picks a free one)")
    serve.add_argument("--node-id", help="this node's id (default: generated once, then kept)")
    serve.add_argument("--durability", choices=["full", "meta_async", "async"])
    serve.add_argument("--access-log", action="store_true", default=None, help="log every request")
    serve.add_argument(
        "--allow-unauthenticated-remote",
        action="store_true",
        default=None,
        help="allow a non-loopback address without tokens (trusted networks only)",
    )
    serve.set_defaults(handler=_serve)

    def client_command(name: str, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--url", default=os.environ.get("KVDB_URL", DEFAULT_URL))
        command.add_argument("--token", default=os.environ.get("KVDB_TOKEN"), help="bearer token")
        return command

    put = client_command("put", "set KEY to VALUE ('-' reads the value from stdin)")
    put.add_argument("key")
    put.add_argument("value")
    put.add_argument("--content-type")
    put.add_argument("--if-version", type=_version, help="only if the current version is this one")
    put.add_argument("--if-absent", action="store_true", help="only if the key does not exist")
    put.set_defaults(handler=_put)

    get = client_command("get", "print the value of KEY")
    get.add_argument("key")
    get.add_argument("--json", action="store_true", help="print key, value and version as JSON")
    get.set_defaults(handler=_get)

    delete = client_command("delete", "delete KEY")
    delete.add_argument("key")
    delete.add_argument("--if-version", type=_version)
    delete.set_defaults(handler=_delete)

    scan = client_command("scan", "print keys in order, one JSON object per line")
    scan.add_argument("--prefix")
    scan.add_argument("--start")
    scan.add_argument("--end")
    scan.add_argument("--limit", type=int, help="stop after this many items")
    scan.set_defaults(handler=_scan)

    watch = client_command("watch", "print change events as they happen, one JSON object per line")
    watch.add_argument("--pattern", action="append", default=[], help="key regex (RE2, whole key)")
    watch.add_argument(
        "--type", action="append", default=[], choices=["INSERT", "UPDATE", "DELETE"]
    )
    watch.add_argument("--since", default="now", help="a seq (events after it) or 'now' (default)")
    watch.add_argument("--stream", help="consume a named stream (resumes after its checkpoint)")
    watch.add_argument("--count", type=int, help="exit after this many events")
    watch.set_defaults(handler=_watch)
    return parser


def _version(text: str) -> Version:
    try:
        return Version.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _serve(args: argparse.Namespace) -> int:
    from ..server.run import serve  # uvicorn is only needed here

    settings = load_settings(
        args.config,
        overrides={
            "node": {"data_dir": args.data_dir, "id": args.node_id, "durability": args.durability},
            "server": {
                "host": args.host,
                "port": args.port,
                "access_log": args.access_log,
                "allow_unauthenticated_remote": args.allow_unauthenticated_remote,
            },
        },
    )
    serve(settings)
    return 0


def _client(args: argparse.Namespace) -> Client:
    return Client(args.url, token=args.token)


def _put(args: argparse.Namespace) -> int:
    value = sys.stdin.buffer.read() if args.value == "-" else args.value.encode()
    with _client(args) as client:
        result = client.put(
            args.key,
            value,
            content_type=args.content_type,
            if_version=args.if_version,
            if_absent=args.if_absent,
        )
    _print_json({"key": result.key, "seq": result.seq, "version": str(result.version)})
    return 0


def _get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        item = client.get(args.key)
    if item is None:
        print(f"kvdb: key {args.key!r} not found", file=sys.stderr)
        return 1
    if args.json:
        _print_json(_item_json(item))
    else:
        sys.stdout.buffer.write(item.value)
        if sys.stdout.isatty():
            sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
    return 0


def _delete(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.delete(args.key, if_version=args.if_version)
    if result is None:
        print(f"kvdb: key {args.key!r} not found", file=sys.stderr)
        return 1
    _print_json({"key": result.key, "seq": result.seq})
    return 0


def _scan(args: argparse.Namespace) -> int:
    with _client(args) as client:
        for count, item in enumerate(
            client.scan_all(prefix=args.prefix, start=args.start, end=args.end)
        ):
            if args.limit is not None and count >= args.limit:
                break
            _print_json(_item_json(item))
    return 0


def _watch(args: argparse.Namespace) -> int:
    since: int | str = int(args.since) if args.since.isdigit() else args.since
    if since != "now" and not isinstance(since, int):
        print("kvdb: --since must be a seq or 'now'", file=sys.stderr)
        return 2
    with (
        _client(args) as client,
        client.watch(
            patterns=args.pattern, types=args.type, since=since, stream=args.stream
        ) as events,
    ):
        for count, event in enumerate(events, start=1):
            _print_json(event.to_json())
            if args.count is not None and count >= args.count:
                break
    return 0


def _item_json(item: Item) -> dict[str, Any]:
    try:
        return {"key": item.key, "value": item.value.decode(), "version": str(item.version)}
    except UnicodeDecodeError:
        value = base64.b64encode(item.value).decode()
        return {"key": item.key, "value": value, "version": str(item.version), "encoding": "base64"}


def _print_json(doc: dict[str, Any]) -> None:
    print(json.dumps(doc, ensure_ascii=False), flush=True)
