"""``Cursor``: one consumer's position in the change log plus a bounded buffer of the live tail.

A cursor is *live* while the manager hands it committed events as they happen, or *catching
up* while it reads them from the durable log (like etcd's synced and unsynced watchers). The
invariant: every event with ``seq <= position`` is in the buffer, was delivered, or did not
match; every event with ``seq <= delivered_through`` was delivered or did not match.

1. Live, ``offer`` appends the matching events of each commit and advances ``position``.
2. If the buffer would exceed ``buffer_size`` (a slow consumer), the cursor drops the buffer,
   rewinds ``position`` to ``delivered_through`` and falls back to catching up (or, with the
   ``disconnect`` policy, closes). The writer never waits, and no event is lost.
3. Catching up, ``next_batch`` reads the log after ``position`` in capped batches; a read
   that reaches the head of the log makes the cursor live again, in the same synchronous step,
   so no commit can slip between the read and the switch (commits whose events were already
   read arrive again live and are skipped by seq).

Everything here runs on the event loop thread; no locks are needed.
"""

from __future__ import annotations

import asyncio
import collections
import enum
from dataclasses import dataclass

from kvdb import ChangeEvent, Compacted, Store

from .clock import Clock
from .config import OverflowPolicy
from .errors import CursorClosed
from .filters import EventFilter

__all__ = ["Batch", "Cursor", "CursorState"]

CATCH_UP_BATCH = 1000


class CursorState(enum.StrEnum):
    LIVE = "live"
    CATCHING_UP = "catching_up"
    COMPACTED = "compacted"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Batch:
    """Events for a consumer, in seq order. ``through``: every event with ``seq <= through``
    is in this batch or an earlier one, or did not match, so it is the checkpoint to store once
    the batch is processed. ``caught_up``: nothing committed is pending after this batch."""

    events: list[ChangeEvent]
    through: int
    caught_up: bool


class Cursor:
    def __init__(
        self,
        store: Store,
        event_filter: EventFilter,
        clock: Clock,
        *,
        position: int,
        buffer_size: int,
        batch_size: int,
        batch_timeout_ms: float,
        on_overflow: OverflowPolicy = OverflowPolicy.CATCH_UP,
        catch_up_batch: int = CATCH_UP_BATCH,
    ) -> None:
        self._store = store
        self.filter = event_filter
        self._clock = clock
        self.position = position
        self.delivered_through = position
        self.buffer_size = buffer_size
        self.batch_size = batch_size
        self.batch_timeout_ms = batch_timeout_ms
        self.on_overflow = on_overflow
        self.catch_up_batch = catch_up_batch
        self.state = CursorState.CATCHING_UP
        self._buffer: collections.deque[ChangeEvent] = collections.deque()
        self._oldest_arrival_ms = 0.0
        self._wakeup = asyncio.Event()
        self._compacted: Compacted | None = None
        self._closed_reason = ""
        self.delivered = 0
        self.batches = 0
        self.overflows = 0

    # -- producer side (the manager's dispatch) -------------------------------------------------

    def offer(self, first_seq: int, last_seq: int, matched: list[ChangeEvent]) -> None:
        """Events ``first_seq..last_seq`` were committed; ``matched`` are those this cursor's
        filter selects. Called on the loop thread, in seq order, for every commit."""
        if self.state is not CursorState.LIVE or last_seq <= self.position:
            return
        if first_seq > self.position + 1:  # a gap: never expected, but never silent either
            self._fall_behind()
            return
        if matched:
            if first_seq <= self.position:
                position = self.position
                matched = [event for event in matched if event.seq > position]
            buffer = self._buffer
            if len(buffer) + len(matched) > self.buffer_size:
                self._fall_behind()
                return
            if not buffer:
                self._oldest_arrival_ms = self._clock.now_ms()
            buffer.extend(matched)
            self._wakeup.set()
        self.position = last_seq

    def _fall_behind(self) -> None:
        self.overflows += 1
        self._buffer.clear()
        self.position = self.delivered_through
        if self.on_overflow is OverflowPolicy.DISCONNECT:
            self.close("overflow")
        else:
            self.state = CursorState.CATCHING_UP
        self._wakeup.set()

    # -- consumer side ------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Events buffered and not yet delivered."""
        return len(self._buffer)

    async def next_batch(self, idle_timeout_ms: float | None = None) -> Batch:
        """The next batch: ``batch_size`` events, or fewer once the oldest has waited
        ``batch_timeout_ms``, or (while catching up) whatever one capped log read found.
        With ``idle_timeout_ms``, an empty batch (a progress bookmark) after that much idle
        time. Raises ``Compacted`` or ``CursorClosed`` when the cursor cannot go on."""
        idle_since: float | None = None
        while True:
            self._raise_if_ended()
            now = self._clock.now_ms()
            if self.state is CursorState.CATCHING_UP:
                self._catch_up()
                if self._buffer and (
                    self.state is CursorState.CATCHING_UP or len(self._buffer) >= self.batch_size
                ):
                    return self._take()
                if self.state is CursorState.CATCHING_UP:
                    # Nothing matched in that stretch of the log: let other tasks run, and
                    # report progress now and then so a checkpoint can move past it.
                    idle_since = now if idle_since is None else idle_since
                    if idle_timeout_ms is not None and now - idle_since >= idle_timeout_ms:
                        return self._take()
                    await asyncio.sleep(0)
                    continue
            pending = len(self._buffer)
            timeout: float | None
            if pending:
                waited = now - self._oldest_arrival_ms
                if pending >= self.batch_size or waited >= self.batch_timeout_ms:
                    return self._take()
                timeout = self.batch_timeout_ms - waited
            elif idle_timeout_ms is not None:
                idle_since = now if idle_since is None else idle_since
                if now - idle_since >= idle_timeout_ms:
                    return self._take()
                timeout = idle_timeout_ms - (now - idle_since)
            else:
                timeout = None
            self._wakeup.clear()
            await self._clock.wait(self._wakeup, timeout)

    def _raise_if_ended(self) -> None:
        if self.state is CursorState.COMPACTED:
            assert self._compacted is not None
            raise self._compacted
        if self.state is CursorState.CLOSED:
            raise CursorClosed(
                f"subscription closed ({self._closed_reason}) after seq {self.delivered_through}",
                reason=self._closed_reason,
            )

    def _take(self) -> Batch:
        buffer = self._buffer
        if len(buffer) <= self.batch_size:
            events = list(buffer)
            buffer.clear()
        else:
            events = [buffer.popleft() for _ in range(self.batch_size)]
        through = buffer[0].seq - 1 if buffer else self.position
        self.delivered_through = through
        if events:
            self.delivered += len(events)
            self.batches += 1
        caught_up = self.state is CursorState.LIVE and not buffer
        return Batch(events, through, caught_up)

    def _catch_up(self) -> None:
        """One capped read of the log after ``position``; live again if it reached the head."""
        limit = min(self.catch_up_batch, self.buffer_size - len(self._buffer))
        head = self._store.last_seq
        try:
            events = self._store.read_changes(self.position, limit)
        except Compacted as exc:
            self.state = CursorState.COMPACTED
            self._compacted = exc
            return
        if events:
            matched = self.filter.select(events)
            if matched and not self._buffer:
                self._oldest_arrival_ms = self._clock.now_ms()
            self._buffer.extend(matched)
            self.position = events[-1].seq
        if len(events) < limit or self.position >= head:
            self.state = CursorState.LIVE

    # -- control ------------------------------------------------------------------------------

    def reconfigure(
        self,
        event_filter: EventFilter,
        *,
        buffer_size: int,
        batch_size: int,
        batch_timeout_ms: float,
        on_overflow: OverflowPolicy,
    ) -> None:
        """Apply new settings from the last delivered event on: the buffer is re-read from the
        log through the new filter, so a reconfiguration loses nothing."""
        self.filter = event_filter
        self.buffer_size = buffer_size
        self.batch_size = batch_size
        self.batch_timeout_ms = batch_timeout_ms
        self.on_overflow = on_overflow
        if self.state in (CursorState.LIVE, CursorState.CATCHING_UP):
            self._buffer.clear()
            self.position = self.delivered_through
            self.state = CursorState.CATCHING_UP
        self._wakeup.set()

    def close(self, reason: str) -> None:
        if self.state is not CursorState.CLOSED:
            self.state = CursorState.CLOSED
            self._closed_reason = reason
            self._buffer.clear()
        self._wakeup.set()

    @property
    def closed_reason(self) -> str:
        return self._closed_reason

    @property
    def compacted(self) -> Compacted | None:
        """The error that stopped this cursor, if the log was compacted past its position."""
        return self._compacted
