"""``GET /changes``: the change log over HTTP, as a page (``feed=normal``), a long poll
(``feed=longpoll``) or a server-sent event stream (``feed=sse``).

Resume tokens: ``since=N`` returns events with ``seq > N``; ``last_seq`` in a response (and
the SSE ``id:`` of every event and bookmark) is the seq to pass as ``since`` next time. It
counts events the filter skipped, so a resumed reader does not scan them again.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from changestream import EventFilter, parse_event_types
from changestream.aio import cancel_and_wait
from kvdb import ChangeEvent, Store

from ..auth import Role
from ..dependencies import node_of, require
from ..draining import Draining
from ..errors import BadRequest
from ..event_json import EventEncoder
from .sse import sse_response

__all__ = ["parse_since", "router", "subscription_filter"]

router = APIRouter(tags=["changes"])

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
    if feed == "sse":
        return sse_response(request, event_filter, position, limit)
    encoder: EventEncoder = request.app.state.event_encoder
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
    """Wait for a matching event, up to ``timeout_ms``; a client that leaves, or a server
    that begins to shut down, ends the wait (the latter with the page as it is)."""
    node = node_of(request)
    draining: Draining = request.app.state.draining
    with draining.feed():
        async with node.streams.subscribe(event_filter, since=since, batch_size=limit) as cursor:
            waiting = asyncio.ensure_future(cursor.next_batch(idle_timeout_ms=timeout_ms))
            gone = asyncio.ensure_future(_disconnected(request))
            stop = asyncio.ensure_future(draining.wait())
            try:
                await asyncio.wait({waiting, gone, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                await cancel_and_wait(gone, stop)
            if not waiting.done():  # the client left, or the server is stopping
                await cancel_and_wait(waiting)
                return [], since
            batch = waiting.result()
    return batch.events, batch.through


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
