"""Connections that really end, so a client that stops reading cannot hold one (and a file
descriptor) forever.

asyncio's ``transport.close()`` waits for the write buffer to drain before it closes the
socket, and a peer that stopped reading never drains it: uvicorn's protocols close that way
(a WebSocket closed for a stall, a server shutting down), and the connection stays
ESTABLISHED. So the server's protocols (``fast_http.KvdbHttpProtocol`` and
``KvdbWebSocketProtocol`` here) wrap their transport in a ``ClosingTransport``, whose
``close()`` still flushes what it can but aborts the connection ``CLOSE_GRACE_S`` later if it
is still open. And they give the app a way to end a connection at once: the scope extension
``kvdb.connection`` with ``abort``, used on a subscriber past its stall timeout
(``abort_connection``). Both rely on uvicorn's protocol internals, like ``fast_http.py``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, MutableMapping
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = [
    "CLOSE_GRACE_S",
    "ClosingTransport",
    "KvdbWebSocketProtocol",
    "abort_connection",
    "offer_abort",
    "probe_connection",
]

CLOSE_GRACE_S = 5.0
_EXTENSION = "kvdb.connection"


class ClosingTransport:
    """A transport whose ``close()`` ends the connection within ``grace`` seconds: it aborts
    it if the write buffer has not drained by then. Every other call goes to the transport
    (the hot ones bound once, as attributes)."""

    def __init__(
        self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop, grace: float
    ) -> None:
        self._transport = transport
        self._loop = loop
        self._grace = grace
        self._timer: asyncio.TimerHandle | None = None
        self.write = transport.write
        self.is_closing = transport.is_closing
        self.get_write_buffer_size = transport.get_write_buffer_size
        self.abort = transport.abort

    def close(self) -> None:
        self._transport.close()
        if self._timer is None:
            # abort() on a transport already closed for good does nothing.
            self._timer = self._loop.call_later(self._grace, self._transport.abort)

    def lost(self) -> None:
        """The connection is gone: nothing left to abort."""
        if self._timer is not None:
            self._timer.cancel()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def offer_abort(
    scope: MutableMapping[str, Any],
    abort: Callable[[], None],
    probe: Callable[[float], asyncio.Future[bool]] | None = None,
) -> None:
    """Let the app handling ``scope`` end its connection at once (and, for a WebSocket, ask
    whether the client still answers)."""
    scope.setdefault("extensions", {})[_EXTENSION] = {"abort": abort, "probe": probe}


def abort_connection(scope: MutableMapping[str, Any]) -> bool:
    """End the connection of ``scope`` at once, unsent data dropped; False where the server
    does not offer it (another ASGI server, the test client)."""
    extension = scope.get("extensions", {}).get(_EXTENSION)
    if extension is None:
        return False
    extension["abort"]()
    return True


async def probe_connection(scope: MutableMapping[str, Any], timeout: float) -> bool | None:
    """Ping the WebSocket client of ``scope`` now: True if it answers within ``timeout``,
    False if not (or if its connection is closing), None where the server cannot tell."""
    extension = scope.get("extensions", {}).get(_EXTENSION)
    probe = None if extension is None else extension.get("probe")
    return None if probe is None else await probe(timeout)


class KvdbWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol (the one ``ws="auto"`` picks with the websockets package),
    with a ``ClosingTransport`` and the ``kvdb.connection`` extension (abort, probe)."""

    _probes: dict[bytes, asyncio.Future[bool]]

    def connection_made(self, transport: Any) -> None:
        self._probes = {}
        super().connection_made(transport)
        self.transport = ClosingTransport(transport, self.loop, CLOSE_GRACE_S)  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(self.transport, ClosingTransport):
            self.transport.lost()
        self._unanswered()
        super().connection_lost(exc)

    def handle_close(self, event: Any) -> None:
        self._unanswered()
        super().handle_close(event)

    def _unanswered(self) -> None:
        """The connection is ending: no probe will get its pong."""
        for future in self._probes.values():
            if not future.done():
                future.set_result(False)
        self._probes.clear()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if self.handshake_initiated and not self.close_sent:  # the app's task starts later
            offer_abort(self.scope, self.transport.abort, self.probe)  # type: ignore[arg-type]

    def probe(self, timeout: float) -> asyncio.Future[bool]:
        """Send a ping now: the future is True once its pong arrives, False if none comes
        within ``timeout`` seconds (or the connection is already closing)."""
        future: asyncio.Future[bool] = self.loop.create_future()
        if self.close_sent or self.disconnected or self.transport.is_closing():
            future.set_result(False)
            return future
        payload = os.urandom(4)
        self._probes[payload] = future
        self.conn.send_ping(payload)
        self.transport.write(b"".join(self.conn.data_to_send()))

        def expire() -> None:
            if self._probes.pop(payload, None) is not None and not future.done():
                future.set_result(False)

        self.loop.call_later(timeout, expire)
        return future

    def handle_pong(self, event: Any) -> None:
        future = self._probes.pop(bytes(event.data), None)
        if future is not None and not future.done():
            future.set_result(True)
        super().handle_pong(event)
