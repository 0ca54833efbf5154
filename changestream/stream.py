"""``ChangeStream``: a named filter over the change log and the consumers reading it.

Each processor (and each remote consumer, such as a WebSocket client of a named stream) gets
its own cursor and checkpoint, so processors run in parallel and a slow one never holds back
the others. An orphaned stream (see ``declare.py``) attaches no consumer: it delivers nothing,
and its checkpoints stay where they were.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from kvdb import Store

from .clock import Clock
from .config import StreamConfig
from .consumer import Consumer, ConsumerStats, checkpoint_key
from .cursor import Cursor
from .declare import Ownership
from .errors import ConsumerBusy, Orphaned
from .processor import ProcessorRunner, StreamProcessor

__all__ = ["ChangeStream", "CursorRegistry"]


class CursorRegistry(Protocol):
    """Where live cursors are registered to receive committed events (the manager)."""

    def register(self, cursor: Cursor) -> None: ...

    def unregister(self, cursor: Cursor) -> None: ...


class ChangeStream:
    def __init__(
        self, config: StreamConfig, store: Store, clock: Clock, registry: CursorRegistry
    ) -> None:
        self.config = config
        self._filter = config.event_filter()
        self._store = store
        self._clock = clock
        self._registry = registry
        self._consumers: dict[str, Consumer] = {}
        self._runners: dict[str, ProcessorRunner] = {}
        self._memory_checkpoints: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self.ownership = Ownership()  # set by the manager

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def consumers(self) -> dict[str, Consumer]:
        return dict(self._consumers)

    async def add_processor(self, processor: StreamProcessor) -> Consumer:
        """Attach ``processor`` and start feeding it, from its checkpoint if it has one."""
        consumer = await self.attach(processor.name)
        runner = ProcessorRunner(processor, consumer, self._clock)
        self._runners[processor.name] = runner
        runner.start()
        return consumer

    async def remove_processor(self, name: str) -> None:
        runner = self._runners.pop(name, None)
        if runner is not None:
            await runner.stop()
        self.detach(name)

    async def attach(self, consumer_name: str) -> Consumer:
        """A consumer for a reader that drives itself and acknowledges what it processed."""
        async with self._lock:
            if self.ownership.orphaned:
                raise Orphaned("stream", self.name, self.ownership.owner or "")
            if consumer_name in self._consumers:
                raise ConsumerBusy(
                    f"consumer {consumer_name!r} of stream {self.name!r} is already attached; "
                    "use another consumer name or close the other one first"
                )
            position = self._start_position(consumer_name)
            config = self.config
            cursor = Cursor(
                self._store,
                self._filter,
                self._clock,
                position=position,
                buffer_size=config.buffer_size,
                batch_size=config.batch_size,
                batch_timeout_ms=config.batch_timeout_ms,
                on_overflow=config.on_overflow,
            )
            consumer = Consumer(
                self.name, consumer_name, cursor, self._store, self._clock,
                persist=config.enable_persistence,
            )  # fmt: skip
            self._consumers[consumer_name] = consumer
            self._registry.register(cursor)
        await consumer.save()  # pin retention from the start position on
        return consumer

    def detach(self, consumer_name: str) -> None:
        consumer = self._consumers.pop(consumer_name, None)
        if consumer is not None:
            self._memory_checkpoints[consumer_name] = consumer.checkpoint
            self._registry.unregister(consumer.cursor)
            consumer.cursor.close("detached")

    def _start_position(self, consumer_name: str) -> int:
        if self.config.enable_persistence:
            stored = self._store.get_checkpoint(checkpoint_key(self.name, consumer_name))
            if stored is not None:
                return stored.seq
        elif consumer_name in self._memory_checkpoints:
            return self._memory_checkpoints[consumer_name]
        start = self.config.start_from
        if start == "latest":
            return self._store.last_seq
        if start == "earliest":
            return self._store.oldest_seq() - 1
        assert isinstance(start, int)
        return start - 1

    async def reconfigure(self, config: StreamConfig) -> None:
        """Apply ``config`` live: each consumer continues after the last event it was given,
        through the new filter, so no event is lost or skipped by the change."""
        async with self._lock:
            persistence_changed = config.enable_persistence != self.config.enable_persistence
            self.config = config
            self._filter = config.event_filter()
            for consumer in self._consumers.values():
                consumer.cursor.reconfigure(
                    self._filter,
                    buffer_size=config.buffer_size,
                    batch_size=config.batch_size,
                    batch_timeout_ms=config.batch_timeout_ms,
                    on_overflow=config.on_overflow,
                )
                consumer.persist = config.enable_persistence
        if persistence_changed:
            if config.enable_persistence:
                for consumer in list(self._consumers.values()):
                    await consumer.save()
            else:
                await self.forget_checkpoints()

    async def close(self) -> None:
        """Stop every processor and end every consumer's cursor (checkpoints are kept)."""
        for name in list(self._runners):
            await self.remove_processor(name)
        for name in list(self._consumers):
            self.detach(name)

    async def forget_checkpoints(self) -> None:
        prefix = checkpoint_key(self.name, "")
        for checkpoint in self._store.list_checkpoints():
            if checkpoint.name.startswith(prefix):
                await self._store.delete_checkpoint(checkpoint.name)
        self._memory_checkpoints.clear()

    def stats(self) -> dict[str, Any]:
        """The stream's figures and every consumer: the attached ones, and the durable
        checkpoints of consumers not attached (``"attached": false``), which still pin the
        change log (``pins``: kept after that seq)."""
        consumers = [c.stats() for c in self._consumers.values()]
        prefix = checkpoint_key(self.name, "")
        for checkpoint in self._store.list_checkpoints():
            name = checkpoint.name[len(prefix) :]
            if checkpoint.name.startswith(prefix) and name not in self._consumers:
                consumers.append(
                    ConsumerStats.detached(name, checkpoint.seq, self._store, self._clock)
                )
        return {
            "name": self.name,
            **self.ownership.to_dict(),
            "config": self.config.to_dict(),
            "last_seq": self._store.last_seq,
            "delivered": sum(c.delivered for c in consumers),
            "batches": sum(c.batches for c in consumers),
            "lag_events": max((c.lag_events for c in consumers), default=0),
            "lag_ms": max((c.lag_ms for c in consumers), default=0.0),
            "consumers": [c.to_dict() for c in consumers],
        }
