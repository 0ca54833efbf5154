"""``GET /changes``: the change log over HTTP, as a page (``feed=normal``), a long poll
(``feed=longpoll``) or a server-sent event stream (``feed=sse``).

Resume tokens: ``since=N`` returns events with ``seq > N``; ``last_seq`` in a response (and
the SSE ``id:`` of every event and bookmark) is the seq to pass as ``since`` next time. It
counts events the filter skipped, so a resumed reader does not scan them again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from changestream import EventFilter, parse_event_types
from kvdb import ChangeEvent, Compacted, Store

from ..auth import Role
from ..dependencies import node_of, require
from ..errors import BadRequest, error_document
from ..event_json import EventEncoder

__all__ = ["parse_since", "router", "subscription_filter"]

router = APIRouter(tags=["changes"])
log = logging.getLogger("kvdb.api")

MAX_LIMIT = 10_000
MAX_SCAN = 100_000  # events one normal request may skip over while filtering
MAX_TIMEOUT_MS = 300_000


def subscription_filter(patterns: list[str], types: list[str]) -> EventFilter:
    return EventFilter(parse_event_types(types), patterns)


def parse_since(raw: str | None, last_seq: int) -> int:
    """The resume position ``since`` (events with seq > since): a seq, ``now`` (the head) or
    nothing (0). A seq past the head is refused (400 ``future_seq``, with the ``head``), as
    etcd refuses a future revision: echoed back as the resume point, it would make a client
    that trusts it skip every event up to it."""
    if raw is None or raw == "":
        return 0
    if raw == "now":
        return last_seq
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest(f"since must be a seq (a non-negative integer) or 'now', got {raw!r:.60}")
    since = int(raw)
    if since > last_seq:
        raise BadRequest(
            f"since={raw:.30} is past the last committed seq, {last_seq}: a resume position "
            "comes from this node (a response's last_seq, an event's seq); resume with "
            f"since={last_seq} or 'now'",
            code="future_seq",
            head=last_seq,
        )
    return since


@router.get("/changes", dependencies=[require(Role.READ)])
async def changes(
    request: Request,
    since: str | None = None,
    pattern: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies defaults
    types: Annotated[list[str], Query(alias="type")] = [],  # noqa: B006
    limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT)] = None,
    feed: Literal["normal", "longpoll", "sse"] = "normal",
    timeout_ms: Annotated[int, Query(ge=0, le=MAX_TIMEOUT_MS)] = 30_000,
) -> Response:
    """Events with ``seq > since`` matching every ``type`` and any ``pattern`` (RE2, whole key)."""
    node = node_of(request)
    store = node.store
    event_filter = subscription_filter(pattern, types)
    if feed == "sse" and (last_event_id := request.headers.get("last-event-id")):
        since = last_event_id
    position = parse_since(since, store.last_seq)
    store.read_changes(position, limit=0)  # raises Compacted (410) before anything is sent
    encoder: EventEncoder = request.app.state.event_encoder
    if feed == "sse":
        stream = _sse(request, event_filter, position, limit, encoder)
        return StreamingResponse(
            stream, media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )
    events, last = _read_page(node.store, event_filter, position, limit or 1000)
    if not events and feed == "longpoll":
        events, last = await _long_poll(request, event_filter, position, limit or 1000, timeout_ms)
    body = b'{"events":%s,"last_seq":%d}' % (encoder.array(events), last)
    return Response(body, media_type="application/json")


def _read_page(
    store: Store, event_filter: EventFilter, since: int, limit: int
) -> tuple[list[ChangeEvent], int]:
    """Matching events after ``since`` (at most ``limit``) and the seq scanned through."""
    matched: list[ChangeEvent] = []
    position = since
    scanned = 0
    while len(matched) < limit and scanned < MAX_SCAN:
        chunk = store.read_changes(position, limit=1000)
        if not chunk:
            break
        scanned += len(chunk)
        for event in chunk:
            if event_filter.matches(event):
                matched.append(event)
                if len(matched) == limit:
                    return matched, event.seq
        position = chunk[-1].seq
    return matched, position


async def _long_poll(
    request: Request, event_filter: EventFilter, since: int, limit: int, timeout_ms: int
) -> tuple[list[ChangeEvent], int]:
    node = node_of(request)
    async with node.streams.subscribe(event_filter, since=since, batch_size=limit) as cursor:
        waiting = asyncio.ensure_future(cursor.next_batch(idle_timeout_ms=timeout_ms))
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not waiting.done():  # the client left: nobody to answer
            waiting.cancel()
            return [], since
        batch = waiting.result()
    return batch.events, batch.through


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _sse(
    request: Request,
    event_filter: EventFilter,
    since: int,
    limit: int | None,
    encoder: EventEncoder,
) -> AsyncIterator[bytes]:
    """``event: change`` per event (``id:`` = seq), ``caught_up`` once the reader reaches the
    head, ``progress`` bookmarks while idle, ``error`` (then the end) if it cannot go on."""
    node = node_of(request)
    settings = node.settings.server.subscriptions
    sent = 0
    announced = False
    async with node.streams.subscribe(
        event_filter, since=since, buffer_size=settings.buffer_size, batch_size=settings.max_batch
    ) as cursor:
        while limit is None or sent < limit:
            try:
                batch = await cursor.next_batch(
                    idle_timeout_ms=settings.progress_interval if announced else 0
                )
            except Exception as exc:  # compacted, or a failure: say so, then end the feed
                if not isinstance(exc, Compacted):
                    log.exception("an SSE feed failed")
                yield _sse_error(exc)
                return
            parts = []
            for event in batch.events[: None if limit is None else limit - sent]:
                parts.append(
                    b"id: %d\nevent: change\ndata: %s\n\n" % (event.seq, encoder.event(event))
                )
                sent += 1
            if batch.caught_up and not announced:
                parts.append(_sse_bookmark("caught_up", batch.through))
                announced = True
            elif not batch.events:
                parts.append(_sse_bookmark("progress", batch.through))
            if not batch.caught_up:
                announced = False
            yield b"".join(parts)


def _sse_error(exc: Exception) -> bytes:
    """The ``error`` event that ends a feed: the error document, ``code`` for ``error``."""
    _, document, _ = error_document(exc)
    document["code"] = document.pop("error")
    return b"event: error\ndata: %s\n\n" % orjson.dumps(document)


def _sse_bookmark(kind: str, seq: int) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, kind.encode(), orjson.dumps({"seq": seq}))
