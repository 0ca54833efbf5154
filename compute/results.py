"""What a pipeline produces: a results table and a stream of updates to it.

The table has one row per group key and window, readable at any time. Each update is a
``ResultUpdate``: ``upsert`` (a row's new values), ``delete`` (a row that is gone: a session
merged into a larger one) or ``record`` (an output of a pipeline that does not aggregate).

Update subscribers get each processed batch's updates through a bounded queue; one that falls
``max_pending`` batches behind is closed (``overflowed``), never waited for: re-read the table
and subscribe again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .timestamps import format_timestamp

__all__ = [
    "TIMESTAMP",
    "Column",
    "ResultTable",
    "ResultUpdate",
    "UpdateFeed",
    "UpdateSubscription",
    "render_row",
]

TIMESTAMP = "timestamp"


class ResultUpdate(NamedTuple):
    op: str  # "upsert" | "delete" | "record"
    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str = "any"  # timestamp | string | int | double | boolean | any


def render_row(row: dict[str, Any], timestamp_columns: Sequence[str]) -> dict[str, Any]:
    """The row as JSON wants it: timestamps (ms) as ISO-8601 UTC strings."""
    if not timestamp_columns:
        return row
    rendered = dict(row)
    for name in timestamp_columns:
        value = rendered.get(name)
        if type(value) is int:
            rendered[name] = format_timestamp(value)
    return rendered


@dataclass(frozen=True)
class ResultTable:
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]

    @property
    def timestamp_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.type == TIMESTAMP)

    def to_json(self) -> dict[str, Any]:
        """``{"columns": [...], "rows": [{...}]}`` with timestamps as ISO-8601 strings."""
        stamps = self.timestamp_columns
        return {
            "columns": [c.name for c in self.columns],
            "rows": [render_row(row, stamps) for row in self.rows],
        }


class UpdateSubscription:
    """One subscriber's bounded queue of update batches."""

    def __init__(self, feed: UpdateFeed, max_pending: int) -> None:
        self._feed = feed
        self._queue: asyncio.Queue[list[ResultUpdate] | None] = asyncio.Queue(max_pending)
        self.overflowed = False
        self.dropped = 0

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def offer(self, updates: list[ResultUpdate]) -> None:
        if self.overflowed:
            self.dropped += len(updates)
            return
        try:
            self._queue.put_nowait(updates)
        except asyncio.QueueFull:
            self.overflowed = True
            self.dropped += len(updates)
            self._end()

    def _end(self) -> None:
        while True:  # make room for the end marker: the reader stops at it anyway
            try:
                self._queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self._queue.get_nowait()

    async def next(self) -> list[ResultUpdate] | None:
        """The next batch of updates; None once the subscription ended (overflow, removal)."""
        return await self._queue.get()

    def close(self) -> None:
        self._feed.unsubscribe(self)
        self._end()


class UpdateFeed:
    """Fan-out of a pipeline's updates to its subscribers."""

    def __init__(self, max_pending: int = 1000) -> None:
        self.max_pending = max_pending
        self._subscribers: list[UpdateSubscription] = []

    @property
    def active(self) -> bool:
        return bool(self._subscribers)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> UpdateSubscription:
        subscription = UpdateSubscription(self, self.max_pending)
        self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: UpdateSubscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    def publish(self, updates: list[ResultUpdate]) -> None:
        if not updates:
            return
        for subscription in list(self._subscribers):
            subscription.offer(updates)
            if subscription.overflowed:
                self.unsubscribe(subscription)

    def close(self, subscriptions: Iterable[UpdateSubscription] | None = None) -> None:
        for subscription in list(subscriptions or self._subscribers):
            subscription.close()
