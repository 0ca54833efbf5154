"""What every server-side WebSocket conversation of kvdb shares: a sender and a receiver task,
sends that give up on a client that stopped reading (and end its connection for real), an end
with a final message when the server shuts down, JSON messages, and errors in one shape::

    {"type": "error", "code": "...", "message": "...", ...fields}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

import orjson
from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from changestream.aio import cancel_and_wait

from ..connections import abort_connection
from ..draining import Draining
from ..errors import BadRequest, error_document

__all__ = [
    "CLOSE_ENDED",
    "CLOSE_ERROR",
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL",
    "CLOSE_POLICY",
    "CLOSE_SLOW_CONSUMER",
    "SessionClosed",
    "WebSocketSession",
    "error_message",
]

log = logging.getLogger("kvdb.ws")

CLOSE_GOING_AWAY = 1001  # the server is shutting down
CLOSE_POLICY = 1008  # the request cannot be served (bad parameters, no such stream...)
CLOSE_ERROR = 4000  # the subscription cannot go on (compacted, closed)
CLOSE_ENDED = 4001  # what was subscribed to has ended (a pipeline stopped)
CLOSE_INTERNAL = 1011  # the server failed (a bug); the error message says so first
CLOSE_SLOW_CONSUMER = 4008  # the client stopped reading


class SessionClosed(Exception):
    """The conversation is over: the client left or was closed."""


def error_message(exc: Exception) -> bytes:
    """An error as a WebSocket message: the HTTP error document with ``code`` for ``error``."""
    _, document, _ = error_document(exc)
    return orjson.dumps({"type": "error", "code": document.pop("error"), **document})


class WebSocketSession:
    def __init__(self, websocket: WebSocket, stall_timeout_s: float) -> None:
        self.ws = websocket
        self.stall_timeout_s = stall_timeout_s
        self.draining: Draining = websocket.app.state.draining
        self._send_lock = asyncio.Lock()

    def resume_hint(self) -> str:
        """How the client resumes after the server ended the conversation."""
        return "the same request"

    async def send(self, payload: bytes, *, closing_reason: str = "slow_consumer") -> None:
        """Send one text frame; a client that does not take it within the stall timeout is
        closed (4008, ``closing_reason``), its connection ended for real (the close frame
        cannot reach a client that does not read either), and ``SessionClosed`` raised."""
        async with self._send_lock:
            try:
                async with asyncio.timeout(self.stall_timeout_s):
                    await self.ws.send_text(payload.decode())
            except TimeoutError:
                log.info("closing a WebSocket client that stopped reading (%s)", closing_reason)
                await self.close(CLOSE_SLOW_CONSUMER, closing_reason)
                abort_connection(self.ws.scope)
                raise SessionClosed from None
            except (WebSocketDisconnect, RuntimeError, OSError) as exc:  # the client went away
                raise SessionClosed from exc

    async def send_error(self, exc: Exception) -> None:
        await self.send(error_message(exc))

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state is WebSocketState.DISCONNECTED:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await self.ws.close(code=code, reason=reason[:120])

    async def fail(self, exc: Exception, code: int = CLOSE_POLICY) -> None:
        """Tell the client what went wrong, then close."""
        with contextlib.suppress(SessionClosed):
            await self.send_error(exc)
        await self.close(code, error_document(exc)[1]["error"])

    async def receive_json(self) -> Any:
        """The next message, parsed; ``SessionClosed`` when the client leaves, ``BadRequest``
        (code ``bad_message``) when it is not JSON."""
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise SessionClosed
        raw = message.get("text") if message.get("text") is not None else message.get("bytes")
        try:
            return orjson.loads(raw or b"")
        except orjson.JSONDecodeError:
            raise BadRequest(
                'messages must be JSON, e.g. {"type": "ping"}', code="bad_message"
            ) from None

    async def answer_ping(self, doc: Any) -> bool:
        """Answer ``{"type": "ping"}`` with a pong; False for any other message."""
        if isinstance(doc, dict) and doc.get("type") == "ping":
            await self.send(b'{"type":"pong"}')
            return True
        return False

    async def converse(
        self, sender: Coroutine[Any, Any, None], receiver: Coroutine[Any, Any, None]
    ) -> None:
        """Run both halves until either ends, or the server begins to shut down (then the
        client gets a ``shutting_down`` error and a close, 1001); re-raise what ended it (other
        than the client leaving) and stop the rest."""
        tasks = {
            asyncio.create_task(sender),
            asyncio.create_task(receiver),
            asyncio.create_task(self._end_on_shutdown()),
        }
        try:
            with self.draining.feed():
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    error = None if task.cancelled() else task.exception()
                    if error is not None and not isinstance(error, SessionClosed):
                        raise error
        finally:
            await cancel_and_wait(*tasks)

    async def _end_on_shutdown(self) -> None:
        await self.draining.wait()
        resume = self.resume_hint()
        with contextlib.suppress(SessionClosed):
            await self.send(error_message(self.draining.message(resume)))
        await self.close(CLOSE_GOING_AWAY, "shutting down")
