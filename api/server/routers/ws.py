"""``WS /ws/changes``: live change subscriptions over WebSocket.

Query: ``pattern`` and ``type`` (repeatable) with ``since`` for an ad-hoc subscription (the
``read`` role), or ``stream=<name>`` (and optionally ``consumer=<id>``, default ``ws``) to
consume a named stream, resuming after the consumer's checkpoint, which moves when the client
sends ``{"ack": seq}``: that changes state (a durable checkpoint pins the change log), so it
needs the ``write`` role.

Server messages (JSON text frames)::

    {"type": "events", "events": [...], "last_seq": N}   batched, in seq order
    {"type": "caught_up", "seq": N}     the reader reached the head (also when nothing to send)
    {"type": "progress", "seq": N}      bookmark while idle: resume with since=N
    {"type": "error", "code": "...", "message": "..."}   (compacted also has oldest_seq)

A client that stops reading is not held in memory: its cursor falls back to the log and
catches it up when it reads again; if a send stays blocked for ``stall_timeout`` the server
closes the connection (code 4008) with the last seq it sent, so the client can resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketState

from changestream import (
    ChangeStreamError,
    Consumer,
    Cursor,
    CursorClosed,
    OverflowPolicy,
    UnknownStream,
)
from kvdb import Compacted, KvdbError

from ...errors import ApiError
from ..auth import Role
from ..connections import abort_connection, probe_connection
from ..dependencies import auth_of, authorization_of, node_of
from ..errors import BadRequest
from ..event_json import EventEncoder
from .changes import parse_since, subscription_filter
from .ws_consumers import PROBE_TIMEOUT_S, ConsumerHolders
from .ws_session import (
    CLOSE_ERROR,
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_SLOW_CONSUMER,
    SessionClosed,
    WebSocketSession,
)

__all__ = ["router"]

router = APIRouter()
log = logging.getLogger("kvdb.ws")


@router.websocket("/ws/changes")
async def ws_changes(websocket: WebSocket) -> None:
    await websocket.accept()
    with contextlib.suppress(SessionClosed):
        await _ChangesSession(websocket).run()


class _ChangesSession(WebSocketSession):
    def __init__(self, websocket: WebSocket) -> None:
        self.node = node_of(websocket)
        self.settings = self.node.settings.server.subscriptions
        super().__init__(websocket, self.settings.stall_timeout / 1000)
        self.encoder: EventEncoder = websocket.app.state.event_encoder
        self.consumer: Consumer | None = None
        self.holders: ConsumerHolders = websocket.app.state.ws_consumers
        self.released = asyncio.Event()
        self.sent_through = 0

    async def run(self) -> None:
        params = self.ws.query_params
        try:
            stream_name = params.get("stream")
            # A named stream's consumer has a checkpoint (durable ones pin the change log)
            # that its acks move: consuming one changes state, so it needs write.
            needed = Role.WRITE if stream_name else Role.READ
            auth_of(self.ws).check(authorization_of(self.ws), needed)
            if stream_name:
                if params.get("since") is not None:
                    raise BadRequest(
                        "since cannot be combined with stream: a named stream resumes "
                        "after its consumer's checkpoint"
                    )
                stream = self.node.streams.get(stream_name)
                name = params.get("consumer") or "ws"
                self.consumer = await self.holders.attach(stream, name, self)
                await self._serve(self.consumer.cursor)
            else:
                patterns, types = params.getlist("pattern"), params.getlist("type")
                event_filter = subscription_filter(patterns, types)
                since = parse_since(params.get("since"), self.node.store.last_seq)
                self.node.store.read_changes(since, limit=0)  # compacted? say so now
                async with self.node.streams.subscribe(
                    event_filter,
                    since=since,
                    buffer_size=self.settings.buffer_size,
                    batch_size=self.settings.max_batch,
                    on_overflow=OverflowPolicy.CATCH_UP,
                ) as cursor:
                    await self._serve(cursor)
        except (ApiError, KvdbError, ChangeStreamError) as exc:
            code = CLOSE_ERROR if isinstance(exc, Compacted | CursorClosed) else CLOSE_POLICY
            await self.fail(exc, code)
        except Exception as exc:  # a bug: the client still hears of it before the close
            log.exception("a WebSocket subscription failed")
            await self.fail(exc, CLOSE_INTERNAL)
        finally:
            self.release()

    async def answers(self) -> bool:
        if self.ws.client_state is WebSocketState.DISCONNECTED:
            return False
        answered = await probe_connection(self.ws.scope, PROBE_TIMEOUT_S)
        return True if answered is None else answered  # None: the server cannot tell

    def release(self, *, end: bool = False) -> None:
        """Detach this session's consumer now: its client left, or (``end``) another
        connection takes it over, and this one is ended."""
        consumer, self.consumer = self.consumer, None
        if consumer is None:
            return
        self.released.set()
        self.holders.forget(consumer.stream, consumer.name, self)
        with contextlib.suppress(UnknownStream):
            stream = self.node.streams.get(consumer.stream)
            if stream.consumers.get(consumer.name) is consumer:
                stream.detach(consumer.name)
        if end:
            abort_connection(self.ws.scope)

    async def _serve(self, cursor: Cursor) -> None:
        self.sent_through = cursor.delivered_through
        await self.converse(self._send_loop(cursor), self._receive_loop())

    def resume_hint(self) -> str:
        if self.consumer is not None:
            return f"stream={self.consumer.stream}&consumer={self.consumer.name} (its checkpoint)"
        return f"since={self.sent_through}"

    def _resume_hint(self) -> str:
        return f"slow_consumer; resume with {self.resume_hint()}"

    async def _send_loop(self, cursor: Cursor) -> None:
        announced = False
        progress_ms = self.settings.progress_interval
        while True:
            try:
                batch = await cursor.next_batch(idle_timeout_ms=progress_ms if announced else 0)
            except CursorClosed as exc:
                if exc.reason == "overflow":
                    await self.close(CLOSE_SLOW_CONSUMER, self._resume_hint())
                raise SessionClosed from exc
            hint = self._resume_hint()
            max_bytes = self.settings.max_message_size
            for message in self.encoder.messages("events", batch.events, batch.through, max_bytes):
                await self.send(message, closing_reason=hint)
            if batch.caught_up and not announced:
                caught_up = orjson.dumps({"type": "caught_up", "seq": batch.through})
                await self.send(caught_up, closing_reason=hint)
                announced = True
            elif not batch.events:
                progress = orjson.dumps({"type": "progress", "seq": batch.through})
                await self.send(progress, closing_reason=hint)
            if not batch.caught_up:
                announced = False
            self.sent_through = batch.through

    async def _receive_loop(self) -> None:
        while True:
            try:
                doc = await self.receive_json()
            except SessionClosed:
                self.release()  # the client left: its consumer is free for its next connection
                raise
            except (ApiError, ChangeStreamError) as exc:
                await self.send_error(exc)
                continue
            try:
                await self._handle(doc)
            except (ApiError, ChangeStreamError) as exc:
                await self.send_error(exc)

    async def _handle(self, doc: Any) -> None:
        if isinstance(doc, dict) and "ack" in doc:
            seq = doc["ack"]
            if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
                raise BadRequest(
                    f"ack must be a seq (a non-negative integer), got {seq!r}", code="bad_message"
                )
            if self.consumer is None:
                raise BadRequest(
                    "acks are for named streams: connect with stream=<name>", code="bad_message"
                )
            await self.consumer.ack(seq)
        elif not await self.answer_ping(doc):
            raise BadRequest(
                'unknown message; send {"ack": seq} or {"type": "ping"}', code="bad_message"
            )
