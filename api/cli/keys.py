"""Keys: ``kvdb put``, ``get``, ``delete``, ``scan`` and ``watch``. Their output is JSON (one
object per line for ``scan`` and ``watch``), which suits both pipes and people."""

from __future__ import annotations

import enum
import sys
from typing import Annotated, Any

import typer

from kvdb.events import value_fields

from ..client import DEFAULT_URL, Item
from ..client.watch import DEFAULT_RETRIES
from .common import IfVersion, Token, Url, connect, print_json

__all__ = ["EventTypeName", "delete", "get", "put", "scan", "watch"]


class EventTypeName(enum.StrEnum):
    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


def put(
    key: str,
    value: Annotated[str, typer.Argument(help="The value; '-' reads it from stdin.")],
    content_type: Annotated[str | None, typer.Option(help="Stored with the value.")] = None,
    if_version: IfVersion = None,
    if_absent: Annotated[bool, typer.Option(help="Only if the key does not exist.")] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Set KEY to VALUE."""
    raw = sys.stdin.buffer.read() if value == "-" else value.encode()
    with connect(url, token) as client:
        result = client.put(
            key, raw, content_type=content_type, if_version=if_version, if_absent=if_absent
        )
    print_json({"key": result.key, "seq": result.seq, "version": str(result.version)})


def get(
    key: str,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print key, value, version and content type.")
    ] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Print the value of KEY (raw bytes, as stored)."""
    with connect(url, token) as client:
        item = client.get(key)
    if item is None:
        print(f"kvdb: key {key!r} not found", file=sys.stderr)
        raise typer.Exit(1)
    if as_json:
        print_json(item_json(item))
        return
    sys.stdout.buffer.write(item.value)
    if sys.stdout.isatty():
        sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


def delete(
    key: str,
    if_version: IfVersion = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Delete KEY."""
    with connect(url, token) as client:
        result = client.delete(key, if_version=if_version)
    if result is None:
        print(f"kvdb: key {key!r} not found", file=sys.stderr)
        raise typer.Exit(1)
    print_json({"key": result.key, "seq": result.seq})


def scan(
    prefix: Annotated[str | None, typer.Option(help="Only keys starting with this.")] = None,
    start: Annotated[str | None, typer.Option(help="From this key (inclusive).")] = None,
    end: Annotated[str | None, typer.Option(help="Up to this key (exclusive).")] = None,
    limit: Annotated[int | None, typer.Option(help="Stop after this many items.")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Print keys in order, one JSON object per line."""
    with connect(url, token) as client:
        page_size = min(limit, 1000) if limit else 1000
        items = client.scan_all(prefix=prefix, start=start, end=end, page_size=page_size)
        for count, item in enumerate(items):
            if limit is not None and count >= limit:
                break
            print_json(item_json(item))


def watch(
    pattern: Annotated[
        list[str] | None, typer.Option(help="Key regex (RE2, whole key); may repeat.")
    ] = None,
    type: Annotated[
        list[EventTypeName] | None, typer.Option(help="Event type; may repeat.")
    ] = None,
    since: Annotated[str, typer.Option(help="A seq (events after it) or 'now'.")] = "now",
    stream: Annotated[
        str | None, typer.Option(help="Consume a named stream (resumes after its checkpoint).")
    ] = None,
    consumer: Annotated[
        str | None,
        typer.Option(
            help="With --stream: the consumer, whose checkpoint it resumes after (default: ws)."
        ),
    ] = None,
    count: Annotated[int | None, typer.Option(help="Exit after this many events.")] = None,
    retries: Annotated[
        int,
        typer.Option(
            min=0, help="Give up after this many failed reconnections in a row (0: never retry)."
        ),
    ] = DEFAULT_RETRIES,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Print change events as they happen, one JSON object per line. A lost connection is
    retried (saying so on stderr) and resumed without a gap."""
    position: int | str = int(since) if since.isascii() and since.isdigit() else since
    if position != "now" and not isinstance(position, int):
        raise typer.BadParameter("must be a seq or 'now'", param_hint="--since")

    def reconnecting(attempt: int, error: Exception) -> None:
        print(f"kvdb: reconnecting ({attempt}/{retries}): {error}", file=sys.stderr, flush=True)

    with (
        connect(url, token) as client,
        client.watch(
            patterns=pattern or (),
            types=[t.value for t in type or ()],
            since=position,
            stream=stream,
            consumer=consumer,
            retries=retries,
            on_retry=reconnecting,
        ) as events,
    ):
        for seen, event in enumerate(events, start=1):
            print_json(event.to_json())
            if count is not None and seen >= count:
                break


def item_json(item: Item) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "key": item.key,
        "version": str(item.version),
        **value_fields(item.value),
    }
    if item.content_type:
        doc["content_type"] = item.content_type
    return doc
