"""uvicorn's httptools protocol, with single-key ``/kv`` requests served from the parser.

``GET``, ``HEAD``, ``PUT`` and ``DELETE /kv/{key}`` are answered here without an ASGI cycle:
no task per request for reads, no scope or message dictionaries, and one socket write per
response. That halves the server's CPU per durable PUT (measured: from about 45 us to about
25 us), which matters because one Python process serves every request. Every other request,
including WebSocket upgrades, goes through uvicorn's own handling unchanged.

A fast request takes uvicorn's place in the connection's request/response cycle (the
``_FastCycle`` stand-in has the attributes uvicorn's protocol consults), so pipelining,
keep-alive, ``Expect: 100-continue``, graceful shutdown and flow control keep working. This
relies on the internals of uvicorn's ``HttpToolsProtocol``; pyproject.toml pins uvicorn to the
minor version it was written against. Its connections end for real when closed, and ASGI
requests may abort theirs (``connections.py``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from .connections import CLOSE_GRACE_S, ClosingTransport, offer_abort
from .kv import KVEndpoints, Reply
from .kv_requests import too_large

__all__ = ["KvdbHttpProtocol"]

log = logging.getLogger("kvdb.api")

_FAST_METHODS = {b"GET": "get", b"HEAD": "get", b"PUT": "put", b"DELETE": "delete"}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# Requests a browser page sends go the ASGI way, where the request guard checks their origin
# and CORS answers them; the fast path checks only the Host of the others.
_FROM_A_BROWSER = frozenset({b"origin", b"sec-fetch-site"})


class KvdbHttpProtocol(HttpToolsProtocol):
    """Create with ``functools.partial(KvdbHttpProtocol, kv=app.kv)`` as uvicorn's ``http``."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        kv: KVEndpoints,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.kv = kv

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = ClosingTransport(transport, self.loop, CLOSE_GRACE_S)  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(self.transport, ClosingTransport):
            self.transport.lost()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        method = self.parser.get_method()
        op = _FAST_METHODS.get(method)
        url = self.url
        headers: dict[bytes, bytes] = {}
        if (
            op is None
            or not url.startswith(b"/kv/")
            or self.root_path
            or self.parser.should_upgrade()
            or url.split(b"?", 1)[0] == b"/kv/_batch"  # POST only: answered as a 405 by ASGI
            or _FROM_A_BROWSER.intersection(headers := dict(self.headers))  # guard and CORS
        ):
            offer_abort(self.scope, self.transport.abort)  # type: ignore[arg-type]
            super().on_headers_complete()
            return
        version = self.parser.get_http_version()
        keep_alive = version != "1.0" and self.parser.should_keep_alive()
        cycle = _FastCycle(self, op, method, url, headers, keep_alive, version)
        existing = self.cycle
        self.cycle = cycle  # type: ignore[assignment]
        if existing is None or existing.response_complete:
            cycle.start()
        else:  # pipelined behind a request still being answered
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, None))  # type: ignore[arg-type]

    def on_body(self, body: bytes) -> None:
        if isinstance(self.cycle, _FastCycle):
            self.cycle.feed(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if isinstance(self.cycle, _FastCycle):
            self.cycle.finish()
        else:
            super().on_message_complete()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if isinstance(cycle, _FastCycle):
            cycle.start()
        else:
            super()._start_asgi_task(cycle, app)


class _NoEvent:
    """uvicorn sets ``cycle.message_event`` on disconnect; a fast cycle has nobody waiting."""

    def set(self) -> None:
        pass


class _FastCycle:
    """One fast request: its body, its turn on the connection, and its answer."""

    message_event = _NoEvent()

    def __init__(
        self,
        protocol: KvdbHttpProtocol,
        op: str,
        method: bytes,
        url: bytes,
        headers: dict[bytes, bytes],
        keep_alive: bool,
        http_version: str,
    ) -> None:
        self.protocol = protocol
        self.http_version = http_version
        self.op = op
        self.method = method
        self.url = url
        self.headers = headers
        self.keep_alive = keep_alive
        self.expect_continue = protocol.expect_100_continue
        self.response_complete = False
        self.disconnected = False
        self._chunks: list[bytes] = []
        self._size = 0
        self._received = False  # the whole request is parsed
        self._started = False  # it is this request's turn to be answered
        self._refusal: Exception | None = None
        try:
            protocol.kv.guard.check_host(headers.get(b"host"))
            if op == "put":
                protocol.kv.check_body_size(headers)
        except Exception as exc:
            self._refusal = exc

    # -- the request --------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        if self._refusal is not None:
            return
        self._size += len(chunk)
        limit = self.protocol.kv.node.store.limits.max_value_bytes
        if self._size > limit:
            self._refusal = too_large("value", None, limit, "max_value_bytes")
            self._chunks = []
            return
        self._chunks.append(chunk)

    def finish(self) -> None:
        self._received = True
        if self._started:
            self._dispatch()

    def start(self) -> None:
        self._started = True
        if self._received:
            self._dispatch()
        elif self.expect_continue:
            if self._refusal is not None:
                self.keep_alive = False  # answer now; the client will not send the body
                self._dispatch()
            else:
                self.protocol.transport.write(_CONTINUE)

    def _dispatch(self) -> None:
        kv = self.protocol.kv
        if self._refusal is not None:
            reply = kv.error_reply(self._refusal, self.op)
            kv.metrics.count(self.op, reply.status)
            self._respond(reply)
            return
        body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks = []
        request = kv.key_request(self.op, self.url, self.headers, body)
        if self.op == "get":  # never suspends: answer without a task
            try:
                request.send(None)
            except StopIteration as done:
                self._respond(done.value)
                return
            raise RuntimeError("a GET on /kv suspended")  # pragma: no cover - a bug
        self._track(asyncio.ensure_future(request)).add_done_callback(self._answered)

    def _answered(self, task: asyncio.Future[Reply]) -> None:
        if task.cancelled():
            return
        self._respond(task.result())

    # -- the response -------------------------------------------------------------------------

    def _respond(self, reply: Reply) -> None:
        protocol = self.protocol
        if self.disconnected or protocol.transport.is_closing():
            self.response_complete = True
            return
        content = [STATUS_LINE[reply.status]]
        for name, value in protocol.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        content += [b"content-length: %d\r\n" % len(reply.body)]
        if reply.content_type is not None:
            content += [b"content-type: ", reply.content_type, b"\r\n"]
        for name, value in reply.headers:
            content += [name, b": ", value, b"\r\n"]
        if not self.keep_alive:
            content.append(b"connection: close\r\n")
        content.append(b"\r\n")
        if self.method != b"HEAD":
            content.append(reply.body)
        protocol.transport.write(b"".join(content))
        if protocol.access_log:  # uvicorn's access-log record: its formatter takes 5 args
            protocol.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                "{}:{}".format(*protocol.client) if protocol.client else "",
                self.method.decode(),
                self.url.decode("latin-1"),
                self.http_version,
                reply.status,
            )
        if protocol.flow.write_paused:  # a slow reader: wait before taking the next request
            self._track(asyncio.ensure_future(self._complete_after_drain()))
        else:
            self._complete()

    def _track(self, task: asyncio.Future[Any]) -> asyncio.Future[Any]:
        """Keep a reference, and let a graceful shutdown wait for it, as uvicorn does."""
        tasks = self.protocol.tasks
        tasks.add(task)  # type: ignore[arg-type]
        task.add_done_callback(tasks.discard)  # type: ignore[arg-type]
        return task

    async def _complete_after_drain(self) -> None:
        await self.protocol.flow.drain()
        self._complete()

    def _complete(self) -> None:
        self.response_complete = True
        if not self.keep_alive:
            self.protocol.transport.close()
        self.protocol.on_response_complete()
