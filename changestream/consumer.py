"""``Consumer``: a named reader of a stream, its cursor, and its checkpoint.

The checkpoint ``N`` means "every event with ``seq <= N`` has been processed"; a consumer that
comes back resumes with the events after it. With persistence it is stored in LMDB (key
``stream/<stream>/<consumer>``), pins change-log retention, and survives restarts; without, it
lives as long as the process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kvdb import Compacted, Store

from .clock import Clock
from .cursor import Cursor
from .errors import InvalidAck

__all__ = ["Consumer", "ConsumerStats", "checkpoint_key"]

log = logging.getLogger("changestream.consumer")


def checkpoint_key(stream: str, consumer: str) -> str:
    return f"stream/{stream}/{consumer}"


@dataclass(frozen=True, slots=True)
class ConsumerStats:
    name: str
    state: str
    checkpoint: int
    delivered: int
    batches: int
    failures: int
    overflows: int
    lag_events: int
    lag_ms: float
    pending: int
    buffer_fill: float
    oldest_seq: int | None  # set when the state is "compacted": the log now starts there
    attached: bool = True  # False: a durable checkpoint whose consumer is not connected
    pins: int | None = None  # the change log is kept after this seq for it (durable only)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def detached(cls, name: str, checkpoint: int, store: Store, clock: Clock) -> ConsumerStats:
        """What a durable checkpoint whose consumer is not attached holds: it still pins the
        change log, and its lag grows until the consumer comes back or is deleted."""
        lag_events, lag_ms = _lag(store, clock, checkpoint)
        return cls(
            name=name, state="detached", checkpoint=checkpoint, delivered=0, batches=0,
            failures=0, overflows=0, lag_events=lag_events, lag_ms=lag_ms, pending=0,
            buffer_fill=0.0, oldest_seq=None, attached=False, pins=checkpoint,
        )  # fmt: skip


class Consumer:
    def __init__(
        self,
        stream: str,
        name: str,
        cursor: Cursor,
        store: Store,
        clock: Clock,
        *,
        persist: bool,
    ) -> None:
        self.stream = stream
        self.name = name
        self.cursor = cursor
        self.checkpoint = cursor.delivered_through
        self._store = store
        self._clock = clock
        self.persist = persist
        self._saved = -1
        self._saving = False
        self.failures = 0

    @property
    def key(self) -> str:
        return checkpoint_key(self.stream, self.name)

    async def ack(self, seq: int) -> None:
        """Record that every event up to ``seq`` is processed. Acks never move backwards; an
        ack past what was delivered is refused (it would skip events)."""
        if seq > self.cursor.delivered_through:
            raise InvalidAck(
                f"cannot ack seq {seq}: only events up to seq {self.cursor.delivered_through} "
                "were delivered to this consumer"
            )
        if seq > self.checkpoint:
            self.checkpoint = seq
        await self.save()

    async def save(self) -> None:
        """Persist the checkpoint. Concurrent calls coalesce: one write carries the latest."""
        if not self.persist or self._saving:
            return
        self._saving = True
        try:
            while self._saved < self.checkpoint:
                target = self.checkpoint
                await self._store.set_checkpoint(self.key, target)
                self._saved = target
        finally:
            self._saving = False

    def stats(self) -> ConsumerStats:
        cursor = self.cursor
        lag_events, lag_ms = _lag(self._store, self._clock, self.checkpoint)
        return ConsumerStats(
            name=self.name,
            state=cursor.state.value,
            checkpoint=self.checkpoint,
            delivered=cursor.delivered,
            batches=cursor.batches,
            failures=self.failures,
            overflows=cursor.overflows,
            lag_events=lag_events,
            lag_ms=lag_ms,
            pending=cursor.pending,
            buffer_fill=cursor.pending / cursor.buffer_size,
            oldest_seq=cursor.compacted.oldest_seq if cursor.compacted else None,
            pins=self.checkpoint if self.persist else None,
        )


def _lag(store: Store, clock: Clock, checkpoint: int) -> tuple[int, float]:
    """Events after ``checkpoint``, and the age in ms of the oldest of them."""
    lag_events = max(0, store.last_seq - checkpoint)
    lag_ms = 0.0
    if lag_events:
        try:
            oldest = store.read_changes(checkpoint, limit=1)
        except Compacted:
            oldest = []
        if oldest:
            lag_ms = max(0.0, clock.now_ms() - oldest[0].ts)
    return lag_events, lag_ms
