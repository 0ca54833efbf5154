"""``ChangeStreamManager``: attaches to the store's commit hook and fans events out.

The store calls ``publish_global_event`` from its writer thread after every commit; the
manager hands the events to its event loop, where each live cursor gets the events its filter
selects. Cursors with the same filter share one evaluation of it. Named streams are created,
updated live, removed and listed here; their definitions are persisted as system records so
they (and their durable checkpoints) survive restarts.

A configuration file declares streams through ``declare``, under the rule of ``declare.py``:
a stream the file no longer declares is orphaned (it delivers nothing, and keeps its
checkpoints, which keep holding back change-log retention) until it is deleted or pruned;
streams created through the API are never the file's, and the API does not change the file's.
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
from .consumer import checkpoint_key
from .cursor import Cursor
from .declare import DeclarePlan, Orphan, Ownership, plan_declaration
from .errors import (
    ChangeStreamError,
    Orphaned,
    OwnershipConflict,
    StreamExists,
    UnknownStream,
)
from .filters import EventFilter
from .processor import StreamProcessor
from .stream import ChangeStream

__all__ = ["ChangeStreamManager"]

log = logging.getLogger("changestream.manager")

_RECORD_PREFIX = "streams/"
_OWNERS_PREFIX = "stream-owners/"  # an earlier version's list of each owner's names


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
                doc, ownership = Ownership.split(json.loads(raw))
                config = StreamConfig.from_dict(doc)
            except (ValueError, TypeError, AttributeError, ChangeStreamError) as exc:
                log.error("ignoring unreadable stream definition %s: %s", key, exc)
                continue
            stream = ChangeStream(config, self.store, self.clock, self)
            stream.ownership = ownership
            self._streams[config.name] = stream
        await self._migrate_owner_lists()

    async def _migrate_owner_lists(self) -> None:
        """An earlier version kept each owner's stream names in one record; the owner now
        lives in each stream's definition."""
        for key, raw in self.store.list_system_records(_OWNERS_PREFIX):
            owner = key[len(_OWNERS_PREFIX) :]
            try:
                names = [name for name in json.loads(raw) if isinstance(name, str)]
            except (ValueError, TypeError):
                names = []
            for name in names:
                stream = self._streams.get(name)
                if stream is not None and stream.ownership.owner is None:
                    stream.ownership = Ownership(owner)
                    await self._persist(stream.config, stream.ownership)
            await self.store.delete_system_record(key)

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
        self,
        config: StreamConfig,
        *,
        processors: Iterable[StreamProcessor] = (),
        exist_ok: bool = False,
    ) -> ChangeStream:
        """Create the stream and attach ``processors`` to it. Streams are persisted, so a
        program that creates its stream at every start passes ``exist_ok``: a stream of that
        name with an identical configuration is then used as it is (its processors resume
        from their checkpoints); a different one is still ``StreamExists``."""
        stream = self._streams.get(config.name)
        if stream is not None:
            if not exist_ok:
                raise StreamExists(config.name)
            if stream.config != config:
                raise StreamExists(config.name, differs=True)
        else:
            stream = ChangeStream(config, self.store, self.clock, self)
            self._streams[config.name] = stream
            await self._persist(config, stream.ownership)
        for processor in processors:
            await stream.add_processor(processor)
        return stream

    async def update(self, config: StreamConfig) -> ChangeStream:
        """Reconfigure the stream named ``config.name`` live; no event is lost. Only streams
        made through the API: a declared one is changed where it is declared."""
        stream = self.get(config.name)
        owner = stream.ownership.owner
        if stream.ownership.orphaned:
            raise Orphaned("stream", config.name, owner or "")
        if owner is not None:
            raise OwnershipConflict.not_the_api("stream", config.name, owner)
        return await self._reconfigure(stream, config)

    async def _reconfigure(self, stream: ChangeStream, config: StreamConfig) -> ChangeStream:
        await stream.reconfigure(config)
        await self._persist(config, stream.ownership)
        return stream

    async def upsert(self, config: StreamConfig) -> ChangeStream:
        if config.name in self._streams:
            stream = self._streams[config.name]
            if stream.config == config and stream.ownership.owner is None:
                return stream
            return await self.update(config)
        return await self.create(config)

    async def declare(
        self,
        configs: Sequence[StreamConfig],
        *,
        owner: str,
        prune: bool = False,
        dry_run: bool = False,
    ) -> DeclarePlan[StreamConfig]:
        """Make the streams ``owner`` declares exist as declared (created, reconfigured live,
        or adopted back from orphanhood with their checkpoints), orphan the ones it declared
        before and no longer does, and with ``prune`` remove every orphan of ``owner`` with
        its checkpoints. Checked whole first: a name made through the API raises
        ``OwnershipConflict`` and nothing changes. ``dry_run`` only plans and checks. See
        ``declare.py``."""
        existing = {name: (s.config, s.ownership) for name, s in self._streams.items()}
        plan = plan_declaration("stream", configs, existing, owner=owner, prune=prune)
        if dry_run:
            return plan
        for config in plan.create:
            stream = ChangeStream(config, self.store, self.clock, self)
            stream.ownership = Ownership(owner)
            self._streams[config.name] = stream
            await self._persist(config, stream.ownership)
        for config in (*plan.update, *plan.unchanged):
            stream = self._streams[config.name]
            if config.name in plan.adopt:
                stream.ownership = stream.ownership.adopted()
                log.info("stream %s is declared by %s again: resuming it", config.name, owner)
            if stream.config != config:
                await self._reconfigure(stream, config)
            elif config.name in plan.adopt:
                await self._persist(config, stream.ownership)
        for name in plan.orphan:
            stream = self._streams[name]
            stream.ownership = stream.ownership.orphan()
            await stream.close()
            await self._persist(stream.config, stream.ownership)
        for name in plan.prune:
            pins = self._orphan(self._streams[name]).pins
            await self.remove(name)
            log.warning(
                "pruned stream %s (no longer declared by %s) and its checkpoints%s",
                name, owner, f" ({', '.join(sorted(pins))})" if pins else "",
            )  # fmt: skip
        return plan

    async def remove(self, name: str) -> None:
        """Stop the stream's processors and forget it, its definition and its checkpoints
        (which releases the change-log retention they held)."""
        stream = self.get(name)
        await stream.close()
        await stream.forget_checkpoints()
        del self._streams[name]
        await self.store.delete_system_record(_RECORD_PREFIX + name)

    def orphans(self) -> tuple[Orphan, ...]:
        """The orphaned streams and the checkpoints with which they still pin retention."""
        return tuple(self._orphan(s) for s in self.list() if s.ownership.orphaned)

    def _orphan(self, stream: ChangeStream) -> Orphan:
        prefix = checkpoint_key(stream.name, "")
        pins = {
            cp.name: cp.seq for cp in self.store.list_checkpoints() if cp.name.startswith(prefix)
        }
        return Orphan(
            "stream", stream.name, stream.ownership.owner or "", pins,
            delete=f"DELETE /streams/{stream.name}",
        )  # fmt: skip

    def stats(self, name: str) -> dict[str, Any]:
        return self.get(name).stats()

    async def _persist(self, config: StreamConfig, ownership: Ownership) -> None:
        doc = {**config.to_dict(), **ownership.to_fields()}
        record = json.dumps(doc, sort_keys=True).encode()
        await self.store.put_system_record(_RECORD_PREFIX + config.name, record)
