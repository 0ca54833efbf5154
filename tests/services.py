"""The machine's services for tests of the external sync targets: where they are, private
servers a test may kill and restart at will, and readers of what a target holds.

The shared services (NATS with JetStream on 4222, PostgreSQL on 5432, Redis on 6379) are what
``.ci/run`` starts; every test uses its own stream, schema or key prefix and removes it. A test
that restarts a server under load uses a private ``nats-server`` or ``redis-server`` on a free
port (the same commands as the machine's, so other tests on the shared ones are not
disturbed); PostgreSQL is restarted in place with ``pg_ctlcluster`` (``restart_postgres``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

NATS_URL = os.environ.get("KVDB_TEST_NATS", "nats://127.0.0.1:4222")
PG_DSN = os.environ.get("KVDB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("KVDB_TEST_REDIS", "redis://127.0.0.1:6379/0")


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class PrivateServer:
    """A server process of this test's own on a free port: ``kill()`` (SIGKILL) and
    ``start()`` again, with the same data directory."""

    def __init__(self, command: list[str], port: int, log: Path) -> None:
        self.command, self.port, self.log = command, port, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateServer:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT)
        wait_for_port(self.port)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, down_s: float = 0.0) -> None:
        self.kill()
        time.sleep(down_s)
        self.start()


def private_nats(tmp_path: Path, *extra: str) -> PrivateServer:
    """``nats-server`` with JetStream, as the machine starts it, on a free port."""
    port = free_port()
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    store = tmp_path / f"nats-{port}"
    command = [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store), *extra]
    return PrivateServer(command, port, tmp_path / f"nats-{port}.log").start()


def private_redis(tmp_path: Path, *extra: str) -> PrivateServer:
    """``redis-server`` keeping nothing on disk, as the machine starts it, on a free port."""
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
               "--appendonly", "no", "--dir", str(tmp_path), *extra]  # fmt: skip
    return PrivateServer(command, port, tmp_path / f"redis-{port}.log").start()


def restart_postgres() -> None:
    """Restart the machine's PostgreSQL (fast shutdown: open transactions abort), and wait
    until it takes connections again."""
    versions = sorted(os.listdir("/etc/postgresql"))
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart",
         "-m", "fast"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    wait_for_port(5432)


# -- what a target holds -------------------------------------------------------------------


async def postgres_rows(dsn: str, schema: str, table: str) -> dict[str, tuple[Any, ...]]:
    """key -> (deleted, value, content_type, hlc, origin) of a PostgreSQL target's table."""
    import psycopg
    from psycopg import sql

    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cursor = await conn.execute(
            sql.SQL("SELECT key, deleted, value, content_type, hlc, origin FROM {}").format(
                sql.Identifier(schema, table)
            )
        )
        rows = await cursor.fetchall()
    return {
        bytes(r[0]).decode(): (r[1], None if r[1] else bytes(r[2]), None if r[1] else r[3] or None,
                               int(r[4]), r[5])
        for r in rows
    }  # fmt: skip


async def drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    for _ in range(50):  # PostgreSQL may be restarting under a fault test
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                await conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )
            return
        except psycopg.OperationalError:
            await asyncio.sleep(0.2)


async def redis_hashes(url: str, prefix: str) -> dict[str, tuple[Any, ...]]:
    """key -> (deleted, value, content_type, hlc, origin) of a Redis target (layout hash)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        found: dict[str, tuple[Any, ...]] = {}
        async for raw in client.scan_iter(match=_glob(prefix) + "*", count=1000):
            key = raw[len(prefix.encode()) :].decode()
            if key.startswith("_"):
                continue
            doc = await client.hgetall(raw)
            deleted = doc[b"deleted"] == b"1"
            ctype = doc.get(b"content_type", b"").decode() or None
            found[key] = (deleted, None if deleted else doc[b"value"], None if deleted else ctype,
                          int(doc[b"hlc"]), doc[b"origin"].decode())  # fmt: skip
        return found
    finally:
        await client.aclose()


async def redis_delete_prefix(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=_glob(prefix) + "*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()


def _glob(prefix: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in prefix)


async def stream_messages(url: str, stream: str, subject: str) -> list[Any]:
    """Every message of ``stream`` on ``subject`` (wildcards allowed), in stream order."""
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        messages: list[Any] = []
        if not (await js.stream_info(stream, subjects_filter=subject)).state.messages:
            return messages
        sub = await js.subscribe(subject, stream=stream, ordered_consumer=True)
        try:
            while True:
                msg = await sub.next_msg(timeout=10)
                messages.append(msg)
                if msg.metadata.num_pending == 0:
                    return messages
        finally:
            await sub.unsubscribe()
    finally:
        await nc.close()


async def delete_stream(url: str, stream: str) -> None:
    import nats
    from nats.js.errors import NotFoundError

    try:
        nc = await nats.connect(url, allow_reconnect=False, connect_timeout=2)
    except Exception:
        return
    try:
        await nc.jetstream().delete_stream(stream)
    except NotFoundError:
        pass
    finally:
        await nc.close()


def versioned_state(items: Iterable[Any]) -> dict[str, tuple[Any, ...]]:
    """key -> (deleted, value, content_type, hlc, origin) of a kvdb versioned scan."""
    return {
        i.key: (i.deleted, None if i.deleted else i.value,
                None if i.deleted else i.content_type or None, i.hlc, i.origin)
        for i in items
    }  # fmt: skip


def replay_stream(messages: Iterable[Any]) -> dict[str, tuple[Any, ...]]:
    """key -> (deleted, value, content_type, hlc, origin): the state a consumer that applies
    every event (and snapshot item) of a JSON-payload stream in order ends with."""
    import base64

    import orjson

    state: dict[str, tuple[Any, ...]] = {}
    for msg in messages:
        doc = orjson.loads(msg.data)
        kind = doc["type"]
        if kind == "SNAPSHOT_END":
            continue
        deleted = kind == "DELETE" or (kind == "SNAPSHOT" and doc["deleted"])
        value = doc.get("new_value")
        if value is not None:
            value = base64.b64decode(value) if doc.get("encoding") == "base64" else value.encode()
        ctype = None if deleted else doc.get("content_type") or None
        state[doc["key"]] = (deleted, None if deleted else value, ctype, int(doc["hlc"]),
                             doc["origin"])  # fmt: skip
    return state


def event_seqs(messages: Iterable[Any]) -> list[int]:
    """The ``Kvdb-Seq`` of each change event of a stream (snapshot messages left out)."""
    return [
        int(m.headers["Kvdb-Seq"])
        for m in messages
        if m.headers.get("Kvdb-Type") in ("INSERT", "UPDATE", "DELETE")
    ]


def scan_all(store: Any) -> list[Any]:
    items: list[Any] = []
    after = None
    while True:
        page, after = store.replica.scan_versions(after, 1000)
        items.extend(page)
        if after is None:
            return items


async def target_state(kind: str, options: Any, node_id: str, name: str) -> dict[str, Any]:
    """What an external target holds for ``node_id``, as ``versioned_state`` shapes a scan."""
    if kind == "postgres":
        return await postgres_rows(options.dsn, options.schema, options.table_for(name))
    if kind == "redis":
        return await redis_hashes(options.url, options.key_prefix)
    messages = await stream_messages(
        options.servers[0], options.stream_for(node_id), options.node_subject(node_id) + ".>"
    )
    return replay_stream(messages)
