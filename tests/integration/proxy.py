"""A TCP proxy per directed replication link, so tests can cut, stall and slow links without
root or iptables (REPLICATION 6).

Every ``LinkProxy`` runs on one ``ProxyLoop``, an asyncio loop in a daemon thread; the test
thread switches a link's mode at any time:

- ``pass``: forward both ways (optionally after ``delay_ms`` per chunk);
- ``blackhole``: accept, read and discard, never forward nor answer: the sender times out.
  Connections open when it starts stall for good (they never carry another byte);
- ``reset``: abort every open connection and each new one at once (RST);
- ``drop_responses(n)``: forward the next ``n`` matching requests but swallow their replies
  (and stall those connections), so the request is applied and the sender times out.

It also records when connections opened and which requests passed (method, path, time), so a
test can see what a link carried and when attempts were made.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["LinkProxy", "ProxyLoop"]

Mode = Literal["pass", "blackhole", "reset"]
_REQUEST_LINE = re.compile(rb"(GET|POST|PUT|DELETE|HEAD) (\S+) HTTP/1\.[01]\r\n")
_CHUNK = 64 * 1024


class ProxyLoop:
    """An event loop in a daemon thread, shared by a test's proxies."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Any, *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def close(self) -> None:
        if self.loop.is_closed():
            return

        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


@dataclass(eq=False)
class _Connection:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    stalled: bool = False  # carries nothing more, ever
    drop_reply: bool = False  # the reply to the request in flight is swallowed


@dataclass(frozen=True)
class Request:
    at: float  # time.monotonic()
    method: str
    path: str


class LinkProxy:
    """Listens on ``127.0.0.1:<port>`` and forwards to ``127.0.0.1:<upstream_port>``."""

    def __init__(self, loop: ProxyLoop, upstream_port: int, name: str = "") -> None:
        self._loop = loop
        self.name = name
        self.upstream_port = upstream_port
        self.mode: Mode = "pass"
        self.delay_ms = 0.0
        self._drop_budget = 0
        self._drop_marker = b""
        self.dropped_replies = 0
        self.accepted: list[float] = []  # time.monotonic() of every accepted connection
        self.requests: list[Request] = []
        self._connections: set[_Connection] = set()
        self._server: asyncio.Server = loop.run(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port: int = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def __repr__(self) -> str:
        return f"LinkProxy({self.name} :{self.port} -> :{self.upstream_port}, {self.mode})"

    # -- control, from the test's thread ------------------------------------------------------

    def set_mode(self, mode: Mode) -> None:
        self._loop.run(self._set_mode(mode))

    def passing(self) -> None:
        self.set_mode("pass")

    def blackhole(self) -> None:
        self.set_mode("blackhole")

    def reset(self) -> None:
        self.set_mode("reset")

    def delay(self, ms: float) -> None:
        self.delay_ms = ms

    def drop_responses(self, count: int, marker: bytes = b"POST /sync/apply ") -> None:
        """Swallow the replies to the next ``count`` requests whose request line starts with
        ``marker`` (the request itself is forwarded)."""
        self._drop_marker = marker
        self._drop_budget = count

    def retarget(self, upstream_port: int) -> None:
        """Forward new connections to another port (a node restarted on a new port)."""
        self.upstream_port = upstream_port

    def requests_to(self, path_prefix: str, method: str = "POST") -> list[Request]:
        return [
            r for r in list(self.requests) if r.method == method and r.path.startswith(path_prefix)
        ]

    def close(self) -> None:
        async def close() -> None:
            self._server.close()
            for conn in list(self._connections):
                _abort(conn.client)
                if conn.upstream is not None:
                    _abort(conn.upstream)

        with contextlib.suppress(Exception):
            self._loop.run(close())

    # -- on the proxy loop --------------------------------------------------------------------

    async def _set_mode(self, mode: Mode) -> None:
        self.mode = mode
        if mode == "reset":
            for conn in list(self._connections):
                self._drop(conn)
        elif mode == "blackhole":
            for conn in self._connections:
                conn.stalled = True

    def _drop(self, conn: _Connection) -> None:
        _abort(conn.client)
        if conn.upstream is not None:
            _abort(conn.upstream)
        self._connections.discard(conn)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(time.monotonic())
        conn = _Connection(writer)
        if self.mode == "reset":
            _abort(writer)
            return
        self._connections.add(conn)
        try:
            if self.mode == "blackhole":
                conn.stalled = True
                await _discard(reader)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    "127.0.0.1", self.upstream_port
                )
            except OSError:
                _abort(writer)  # the node is down: the sender sees the connection fail
                return
            conn.upstream = up_writer
            await asyncio.gather(
                self._pump(conn, reader, up_writer, to_upstream=True),
                self._pump(conn, up_reader, writer, to_upstream=False),
                return_exceptions=True,
            )
        finally:
            self._connections.discard(conn)
            for w in (conn.client, conn.upstream):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()

    async def _pump(
        self,
        conn: _Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        to_upstream: bool,
    ) -> None:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                if not conn.stalled:
                    with contextlib.suppress(Exception):
                        writer.write_eof()
                return
            if to_upstream:
                self._note_requests(conn, data)
            elif conn.drop_reply:
                conn.stalled = True  # the reply is swallowed; the client will give up
                conn.drop_reply = False
                self.dropped_replies += 1
            if conn.stalled:
                continue
            if self.delay_ms:
                await asyncio.sleep(self.delay_ms / 1000)
            writer.write(data)
            await writer.drain()

    def _note_requests(self, conn: _Connection, data: bytes) -> None:
        for match in _REQUEST_LINE.finditer(data):
            if match.start() != 0 and data[match.start() - 2 : match.start()] != b"\r\n":
                continue
            self.requests.append(
                Request(time.monotonic(), match.group(1).decode(), match.group(2).decode())
            )
        if self._drop_budget > 0 and data.startswith(self._drop_marker) and not conn.stalled:
            self._drop_budget -= 1
            conn.drop_reply = True


async def _discard(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await reader.read(_CHUNK):
            pass


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with an RST, as a crashed peer or a firewall reset would."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(Exception):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.transport.abort()
