"""The SSE form of ``GET /changes`` (``feed=sse``): a response that may never end, so it is
bounded two ways. A client that takes no data for ``stall_timeout`` has its connection aborted
(it cannot hold it, nor a file descriptor, forever; ``connections.py``), and a server shutting
down ends the feed with a final ``error`` event of code ``shutting_down`` (``draining.py``).

Events: ``change`` per event (``id:`` = seq), ``caught_up`` once the reader reaches the head,
``progress`` bookmarks while idle, ``error`` (then the end) if it cannot go on; every ``id:``
is the seq to resume after (``Last-Event-ID``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from changestream import EventFilter
from kvdb import Compacted

from ..connections import abort_connection
from ..dependencies import node_of
from ..draining import Drained, Draining
from ..errors import error_document
from ..event_json import EventEncoder

__all__ = ["sse_response"]

log = logging.getLogger("kvdb.api")


class _FeedResponse(StreamingResponse):
    """A ``StreamingResponse`` whose every send must complete within ``stall_timeout_s``."""

    def __init__(self, content: AsyncIterator[bytes], stall_timeout_s: float) -> None:
        super().__init__(
            content, media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )
        self.stall_timeout_s = stall_timeout_s
        self._scope: Scope = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._scope = scope
        await super().__call__(scope, receive, send)

    async def stream_response(self, send: Send) -> None:
        async def send_or_abort(message: Message) -> None:
            try:
                async with asyncio.timeout(self.stall_timeout_s):
                    await send(message)
            except TimeoutError:
                log.info("closing an SSE client that stopped reading")
                if not abort_connection(self._scope):
                    raise
                # Aborted: the server drops what is sent from now on and reports the
                # disconnect, which ends this response.

        await super().stream_response(send_or_abort)


def sse_response(
    request: Request, event_filter: EventFilter, since: int, limit: int | None
) -> StreamingResponse:
    settings = node_of(request).settings.server.subscriptions
    feed = _sse(request, event_filter, since, limit, request.app.state.event_encoder)
    return _FeedResponse(feed, settings.stall_timeout / 1000)


async def _sse(
    request: Request,
    event_filter: EventFilter,
    since: int,
    limit: int | None,
    encoder: EventEncoder,
) -> AsyncIterator[bytes]:
    node = node_of(request)
    draining: Draining = request.app.state.draining
    settings = node.settings.server.subscriptions
    sent = 0
    announced = False
    position = since
    with draining.feed():
        async with node.streams.subscribe(
            event_filter,
            since=since,
            buffer_size=settings.buffer_size,
            batch_size=settings.max_batch,
        ) as cursor:
            while limit is None or sent < limit:
                try:
                    batch = await draining.race(
                        cursor.next_batch(
                            idle_timeout_ms=settings.progress_interval if announced else 0
                        )
                    )
                except Drained:
                    yield _error(draining.message(f"since={position}"), seq=position)
                    return
                except Exception as exc:  # compacted, or a failure: say so, then end
                    if not isinstance(exc, Compacted):
                        log.exception("an SSE feed failed")
                    yield _error(exc)
                    return
                parts = []
                for event in batch.events[: None if limit is None else limit - sent]:
                    parts.append(
                        b"id: %d\nevent: change\ndata: %s\n\n" % (event.seq, encoder.event(event))
                    )
                    sent += 1
                    position = event.seq
                if batch.caught_up and not announced:
                    parts.append(_bookmark("caught_up", batch.through))
                    announced = True
                elif not batch.events:
                    parts.append(_bookmark("progress", batch.through))
                if not batch.caught_up:
                    announced = False
                if sent != limit:
                    position = batch.through
                yield b"".join(parts)


def _error(exc: Exception, **extra: Any) -> bytes:
    """The ``error`` event that ends a feed: the error document, ``code`` for ``error``."""
    _, document, _ = error_document(exc)
    document = {"code": document.pop("error"), **document, **extra}
    return b"event: error\ndata: %s\n\n" % orjson.dumps(document)


def _bookmark(kind: str, seq: int) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, kind.encode(), orjson.dumps({"seq": seq}))
