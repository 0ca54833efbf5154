"""``ChangeStreamManager``: attaches to the store's commit hook and fans events out.

The store calls ``publish_global_event`` from its writer thread after every commit; the
manager hands the events to its event loop, where each live cursor gets the events its filter
selects. Cursors with the same filter share one evaluation of it. Named streams are created,
updated live, removed and listed here; their definitions are persisted as system records so
they (and their durable checkpoints) survive restarts.

A configuration file declares streams through ``declare``: the manager remembers which names
each owner declared, so a stream dropped from the file is removed on the next start (with its
checkpoints, which would otherwise hold back change-log retention for a reader that is gone),
while streams created through the API are left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from kvdb import ChangeEvent, Store

from .clock import Clock, SystemClock
from .config import OverflowPolicy, StreamConfig
from .cursor import Cursor
from .errors import StreamExists, UnknownStream
from .filters import EventFilter
from .processor import StreamProcessor
from .stream import ChangeStream

__all__ = ["ChangeStreamManager"]

log = logging.getLogger("changestream.manager")

_RECORD_PREFIX = "streams/"
_DECLARED_PREFIX = "stream-owners/"


class ChangeStreamManager:
    def __init__(self, store: Store, *, clock: Clock | None = None) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self._streams: dict[str, ChangeStream] = {}
        self._cursors: dict[Cursor, None] = {}  # an ordered set
        self._fanout: tuple[Cursor, ...] = ()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Attach to the commit hook and re-create the persisted streams."""
        self._loop = asyncio.get_running_loop()
        self.store.add_commit_listener(self.publish_global_event)
        for key, raw in self.store.list_system_records(_RECORD_PREFIX):
            try:
                config = StreamConfig.from_dict(json.loads(raw))
            except (ValueError, TypeError) as exc:
                log.error("ignoring unreadable stream definition %s: %s", key, exc)
                continue
            self._streams[config.name] = ChangeStream(config, self.store, self.clock, self)

    async def stop(self) -> None:
        self.store.remove_commit_listener(self.publish_global_event)
        for stream in list(self._streams.values()):
            await stream.close()
        for cursor in list(self._cursors):
            cursor.close("shutdown")
        self._cursors.clear()
        self._fanout = ()

    # -- the commit hook and fan-out ----------------------------------------------------------

    def publish_global_event(self, events: Sequence[ChangeEvent]) -> None:
        """Publish committed events to every subscriber. Thread-safe and non-blocking: the
        store calls it from its writer thread, in seq order."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if not events:
            return
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(self._dispatch, events)

    def _dispatch(self, events: Sequence[ChangeEvent]) -> None:
        first, last = events[0].seq, events[-1].seq
        selected: dict[object, list[ChangeEvent]] = {}
        for cursor in self._fanout:
            key = cursor.filter.key
            matched = selected.get(key)
            if matched is None:
                matched = selected[key] = cursor.filter.select(events)
            cursor.offer(first, last, matched)

    def register(self, cursor: Cursor) -> None:
        self._cursors[cursor] = None
        self._fanout = tuple(self._cursors)

    def unregister(self, cursor: Cursor) -> None:
        if self._cursors.pop(cursor, 0) is None:
            self._fanout = tuple(self._cursors)

    @asynccontextmanager
    async def subscribe(
        self,
        event_filter: EventFilter,
        *,
        since: int,
        buffer_size: int = 10_000,
        batch_size: int = 1000,
        batch_timeout_ms: float = 0,
        on_overflow: OverflowPolicy = OverflowPolicy.CATCH_UP,
    ) -> AsyncIterator[Cursor]:
        """An ad-hoc subscription (no name, no checkpoint) to events with ``seq > since``."""
        cursor = Cursor(
            self.store,
            event_filter,
            self.clock,
            position=since,
            buffer_size=buffer_size,
            batch_size=batch_size,
            batch_timeout_ms=batch_timeout_ms,
            on_overflow=on_overflow,
        )
        self.register(cursor)
        try:
            yield cursor
        finally:
            self.unregister(cursor)
            cursor.close("unsubscribed")

    @property
    def subscriber_count(self) -> int:
        return len(self._cursors)

    # -- named streams ------------------------------------------------------------------------

    def get(self, name: str) -> ChangeStream:
        try:
            return self._streams[name]
        except KeyError:
            raise UnknownStream(name) from None

    def list(self) -> list[ChangeStream]:
        return [self._streams[name] for name in sorted(self._streams)]

    async def create(
        self, config: StreamConfig, *, processors: Iterable[StreamProcessor] = ()
    ) -> ChangeStream:
        if config.name in self._streams:
            raise StreamExists(config.name)
        stream = ChangeStream(config, self.store, self.clock, self)
        self._streams[config.name] = stream
        await self._persist(config)
        for processor in processors:
            await stream.add_processor(processor)
        return stream

    async def update(self, config: StreamConfig) -> ChangeStream:
        """Reconfigure the stream named ``config.name`` live; no event is lost."""
        stream = self.get(config.name)
        await stream.reconfigure(config)
        await self._persist(config)
        return stream

    async def upsert(self, config: StreamConfig) -> ChangeStream:
        if config.name in self._streams:
            if self._streams[config.name].config == config:
                return self._streams[config.name]
            return await self.update(config)
        return await self.create(config)

    async def declare(
        self, configs: Sequence[StreamConfig], *, owner: str = "config"
    ) -> tuple[str, ...]:
        """Make the streams ``owner`` declares exist as declared (created, or reconfigured
        live), and remove the ones it declared last time but no longer does. A declared name
        belongs to its owner from then on, also if the API created it first. Returns the names
        removed."""
        record = _DECLARED_PREFIX + owner
        raw = self.store.get_system_record(record)
        before: Sequence[str] = () if raw is None else json.loads(raw)
        for config in configs:
            await self.upsert(config)
        declared = {config.name for config in configs}
        removed: tuple[str, ...] = ()
        for name in before:
            if name not in declared and name in self._streams:
                log.warning(
                    "stream %s is no longer declared by %s: removing it and its checkpoints",
                    name, owner,
                )  # fmt: skip
                await self.remove(name)
                removed += (name,)
        if sorted(declared) != sorted(before):
            await self.store.put_system_record(record, json.dumps(sorted(declared)).encode())
        return removed

    async def remove(self, name: str) -> None:
        """Stop the stream's processors and forget it, its definition and its checkpoints
        (which releases the change-log retention they held)."""
        stream = self.get(name)
        await stream.close()
        await stream.forget_checkpoints()
        del self._streams[name]
        await self.store.delete_system_record(_RECORD_PREFIX + name)

    def stats(self, name: str) -> dict[str, Any]:
        return self.get(name).stats()

    async def _persist(self, config: StreamConfig) -> None:
        record = json.dumps(config.to_dict(), sort_keys=True).encode()
        await self.store.put_system_record(_RECORD_PREFIX + config.name, record)
