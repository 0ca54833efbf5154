"""``HandlerRunner``: one handler's task, queue, retries, dead letters and checkpoint.

Each handler reads the bus stream through a consumer of its own (its cursor is its queue), so
a slow or failing handler falls behind alone; its cursor then catches up from the log, and
writers never wait. The loop:

1. Take the next batch from the cursor (waiting at most until a partial batch is due or the
   checkpoint should be written) and keep the events routed to this handler as *pending*.
2. Deliver what is due: everything for handlers of independent events; full batches, and a
   partial one whose first event has waited ``flush_interval_ms``, for batching handlers.
3. A failed delivery is retried with backoff (``RetryPolicy``) in place, so the handler's
   order holds; after the last attempt the failing event (or batch) goes to the dead-letter
   store and the handler moves on.
4. The checkpoint is "handled through": the seq before the first pending event, or the last
   seq examined. It is written at most every ``checkpoint_interval_ms`` while busy, when idle,
   and on stop; after a crash the handler sees again at most what it handled since.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence

from changestream import Clock, Consumer, CursorClosed
from changestream.aio import cancel_and_wait
from kvdb import ChangeEvent, Compacted, KvdbError, Store

from .config import BusConfig, RetryPolicy
from .dead_letters import DeadLetter, DeadLetterStore, describe_error
from .errors import PartialDelivery, PermanentDeliveryError
from .handlers import EventHandler
from .stats import HandlerCounters, HandlerStats, percentile

__all__ = ["Commit", "HandlerRunner", "Selector", "acknowledge"]

log = logging.getLogger("eventbus.runner")

Selector = Callable[[Sequence[ChangeEvent]], list[ChangeEvent]]
Commit = Callable[[Consumer, int], Awaitable[None]]  # record "handled through seq"
MAX_RUN = 1000  # independent events handed over in one call


async def acknowledge(consumer: Consumer, seq: int) -> None:
    """The default ``Commit``: the consumer's checkpoint (in LMDB, for the bus stream)."""
    await consumer.ack(seq)


class HandlerRunner:
    def __init__(
        self,
        handler: EventHandler,
        consumer: Consumer,
        *,
        select: Selector,
        store: Store,
        clock: Clock,
        config: BusConfig,
        dead_letters: DeadLetterStore,
        rng: random.Random,
        commit: Commit = acknowledge,
    ) -> None:
        self.handler = handler
        self.consumer = consumer
        self._select = select
        self._store = store
        self._clock = clock
        self._config = config
        self.retry: RetryPolicy = handler.retry or config.retry
        self._max_dead_letters = config.max_dead_letters
        self._dead = dead_letters
        self._rng = rng
        self._commit = commit
        self._batched = handler.batch_size > 1
        self.counters = HandlerCounters()
        self.through = consumer.checkpoint  # every event up to here was examined
        self._pending: list[ChangeEvent] = []
        self._pending_since = 0.0
        self._saved_at = clock.now_ms()
        self._lock = asyncio.Lock()  # one handle() at a time: live, re-drive and replay
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    @property
    def name(self) -> str:
        return self.handler.name

    @property
    def handled_through(self) -> int:
        """Every event with a seq up to this one is handled, dead-lettered or not routed here."""
        return self._pending[0].seq - 1 if self._pending else self.through

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"bus handler {self.name}")

    async def stop(self) -> None:
        """Stop delivering and write the checkpoint. Events still pending (a partial batch)
        are not flushed: the checkpoint stays before them, so they come again next time."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        try:
            await self._save(force=True)
        except KvdbError as exc:
            log.warning("handler %s: could not save its checkpoint on stop: %s", self.name, exc)

    # -- the loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        cursor = self.consumer.cursor
        try:
            while True:
                batch = await cursor.next_batch(idle_timeout_ms=self._wait_ms())
                if batch.events:
                    selected = self._select(batch.events)
                    if selected:
                        if not self._pending:
                            self._pending_since = self._clock.now_ms()
                        self._pending.extend(selected)
                self.through = batch.through
                await self._deliver_due()
                await self._save()
        except (Compacted, CursorClosed) as exc:
            self.error = exc
            log.warning("handler %s stopped: %s", self.name, exc)
        except (
            Exception
        ) as exc:  # a bug, or the store failing under us: report, do not die silently
            self.error = exc
            log.exception("handler %s stopped on an unexpected error", self.name)

    def _wait_ms(self) -> float:
        now = self._clock.now_ms()
        wait = self._config.idle_interval_ms
        if self._pending:
            flush_at = self._pending_since + self.handler.flush_interval_ms
            wait = min(wait, max(0.0, flush_at - now))
        if self.handled_through > self.consumer.checkpoint:
            save_at = self._saved_at + self._config.checkpoint_interval_ms
            wait = min(wait, max(0.0, save_at - now))
        return wait

    async def _deliver_due(self) -> None:
        pending = self._pending
        if not pending:
            return
        if not self._batched:
            while pending:
                await self._deliver(pending, min(len(pending), MAX_RUN))
            return
        size = self.handler.batch_size
        while len(pending) >= size:
            await self._deliver(pending, size)
        waited = self._clock.now_ms() - self._pending_since
        if pending and waited >= self.handler.flush_interval_ms:
            await self._deliver(pending, len(pending))

    async def _save(self, *, force: bool = False) -> None:
        target = self.handled_through
        if target <= self.consumer.checkpoint:
            return
        now = self._clock.now_ms()
        if force or now - self._saved_at >= self._config.checkpoint_interval_ms:
            await self._commit(self.consumer, target)
            self._saved_at = now

    # -- delivery -----------------------------------------------------------------------------

    async def _deliver(self, queue: list[ChangeEvent], count: int) -> tuple[int, int]:
        """Deliver ``queue[:count]``, retrying failures and dead-lettering what exhausts its
        attempts; handled and dead-lettered events are removed from the head of ``queue`` as
        they go (so a cancellation leaves exactly the undelivered ones). Returns the numbers
        of events handled and dead-lettered.

        A handler of independent events that fails a run of them without saying which one
        (no ``PartialDelivery``) gets the rest one at a time, so the failure is pinned on the
        right event (events before it may be delivered twice, as at-least-once allows)."""
        counters = self.counters
        remaining = count
        handled_total = dead_total = 0
        attempts = 0
        first_failed = 0.0
        one_by_one = False
        while remaining:
            chunk = queue[: 1 if one_by_one else remaining]
            done, error, located = await self._attempt(chunk)
            if done:
                del queue[:done]
                remaining -= done
                handled_total += done
                attempts = 0
            if error is None:
                continue
            if not (self._batched or located or len(chunk) == 1):
                one_by_one = True
                continue
            attempts += 1
            now = self._clock.now_ms()
            if attempts == 1:
                first_failed = now
            unit = remaining if self._batched else 1
            counters.failed += unit
            counters.last_error = describe_error(error)
            if isinstance(error, PermanentDeliveryError) or attempts >= self.retry.max_attempts:
                await self._dead_letter(queue[:unit], error, attempts, first_failed, now)
                dead_total += unit
                del queue[:unit]
                remaining -= unit
                attempts = 0
            else:
                delay = self.retry.delay_ms(attempts, self._rng)
                counters.retried += unit
                log.warning(
                    "handler %s failed on seq %d (attempt %d of %d), retrying in %.0f ms: %s",
                    self.name, queue[0].seq, attempts, self.retry.max_attempts, delay,
                    counters.last_error,
                )  # fmt: skip
                await self._clock.sleep(delay)
        return handled_total, dead_total

    async def _dead_letter(
        self,
        events: list[ChangeEvent],
        error: Exception,
        attempts: int,
        first_failed: float,
        now: float,
    ) -> None:
        letter = DeadLetter(
            self.name, tuple(events), describe_error(error), attempts, first_failed, now
        )
        evicted = await self._dead.add(letter, limit=self._max_dead_letters)
        self.counters.dead_lettered += len(events)
        log.warning(
            "handler %s: seq %d..%d dead-lettered after %d attempt(s): %s",
            self.name, letter.seq, letter.events[-1].seq, attempts, letter.error,
        )  # fmt: skip
        if evicted:
            self.counters.dead_letters_evicted += len(evicted)
            log.error(
                "handler %s: %d dead letter(s) past the limit of %d evicted, oldest first "
                "(seq %s); re-drive or purge dead letters, or raise max_dead_letters",
                self.name, len(evicted), self._max_dead_letters,
                ", ".join(map(str, evicted[:10])) + (", ..." if len(evicted) > 10 else ""),
            )  # fmt: skip

    async def _attempt(self, events: list[ChangeEvent]) -> tuple[int, Exception | None, bool]:
        """One call of the handler: how many events (from the start) were handled, the error
        that stopped it if any, and whether the handler said which event failed."""
        try:
            async with self._lock:
                await self.handler.handle(events)
        except PartialDelivery as exc:
            handled = 0 if self._batched else min(max(exc.handled, 0), len(events) - 1)
            self._handled(events[:handled])
            cause = exc.cause
            return handled, cause if isinstance(cause, Exception) else exc, True
        except Exception as exc:
            return 0, exc, False
        self._handled(events)
        return len(events), None, True

    def _handled(self, events: Sequence[ChangeEvent]) -> None:
        if not events:
            return
        counters = self.counters
        counters.delivered += len(events)
        counters.deliveries += 1
        counters.observe_latency(self._clock.now_ms() - events[0].ts)

    async def deliver(self, events: Sequence[ChangeEvent]) -> tuple[int, int]:
        """Deliver ``events`` out of band (a replay), with the live path's retries and dead
        letters, in units of the handler's batch size."""
        queue = list(events)
        handled = dead = 0
        unit = self.handler.batch_size if self._batched else MAX_RUN
        while queue:
            done, failed = await self._deliver(queue, min(len(queue), unit))
            handled += done
            dead += failed
        return handled, dead

    async def deliver_once(self, events: Sequence[ChangeEvent]) -> Exception | None:
        """One attempt at ``events`` (a re-drive): None if they were handled, else the error."""
        _, error, _ = await self._attempt(list(events))
        if error is not None:
            self.counters.failed += len(events)
            self.counters.last_error = describe_error(error)
        return error

    # -- stats --------------------------------------------------------------------------------

    def stats(self) -> HandlerStats:
        handled = self.handled_through
        lag_events = max(0, self._store.last_seq - handled)
        lag_ms = 0.0
        if lag_events:
            try:
                oldest = self._store.read_changes(handled, limit=1)
            except Compacted:
                oldest = []
            if oldest:
                lag_ms = max(0.0, self._clock.now_ms() - oldest[0].ts)
        if self.running:
            state = "running"
        elif isinstance(self.error, Compacted):
            state = "compacted"
        else:
            state = "failed" if self.error is not None else "stopped"
        counters = self.counters
        recent = list(counters.recent_latency_ms)
        return HandlerStats(
            name=self.name,
            state=state,
            checkpoint=self.consumer.checkpoint,
            handled_through=handled,
            delivered=counters.delivered,
            failed=counters.failed,
            retried=counters.retried,
            dead_lettered=counters.dead_lettered,
            dead_letters_evicted=counters.dead_letters_evicted,
            pending=len(self._pending) + self.consumer.cursor.pending,
            lag_events=lag_events,
            lag_ms=lag_ms,
            latency_ms_p50=percentile(recent, 50),
            latency_ms_p99=percentile(recent, 99),
            last_error=counters.last_error if self.error is None else describe_error(self.error),
        )
