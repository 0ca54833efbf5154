"""Stream processors: code that consumes a stream's batches, and the task that drives one.

Delivery contract: a processor sees the stream's matching events in seq order, in batches, at
least once and with no gaps. A batch is acknowledged (its ``through`` becomes the checkpoint)
only after ``process`` returns; if the process dies first, the batch is delivered again after a
restart, so ``process`` should be idempotent or drop events whose seq it has already seen. If
``process`` raises, the same batch is retried with exponential backoff, never skipped.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from kvdb import ChangeEvent, Compacted

from .aio import cancel_and_wait
from .callables import is_async_callable
from .clock import Clock
from .consumer import Consumer
from .cursor import Batch
from .errors import CursorClosed

__all__ = ["FunctionProcessor", "ProcessorRunner", "StreamProcessor"]

log = logging.getLogger("changestream.processor")

IDLE_CHECKPOINT_MS = 1000
RETRY_BASE_MS = 100
RETRY_MAX_MS = 30_000


@runtime_checkable
class StreamProcessor(Protocol):
    """Receives a stream's events. ``name`` identifies its checkpoint within the stream.

    A processor may also define ``async def process_batch(self, batch: Batch)``: it is then
    called instead of ``process`` with the whole ``Batch``, whose ``through`` says how far the
    batch reaches past its last event (events the stream's filter skipped), and also for a
    batch of skipped events only. Replication uses it to move its peer's checkpoint along.
    """

    name: str

    async def process(self, batch: Sequence[ChangeEvent]) -> None: ...


class FunctionProcessor:
    """A processor from a function of the batch. An async callable (``is_async_callable``) is
    awaited; a plain function runs in a worker thread so it cannot stall the event loop, and an
    awaitable it returns anyway (a lambda around a coroutine function) is awaited on the loop:
    the batch is acknowledged only once the work is done."""

    def __init__(
        self, name: str, fn: Callable[[Sequence[ChangeEvent]], Awaitable[None] | None]
    ) -> None:
        self.name = name
        self._fn = fn
        self._is_async = is_async_callable(fn)

    async def process(self, batch: Sequence[ChangeEvent]) -> None:
        if self._is_async:
            await self._fn(batch)  # type: ignore[misc]
            return
        result = await asyncio.to_thread(self._fn, batch)
        if inspect.isawaitable(result):
            await result


class ProcessorRunner:
    """Drives one processor: next batch, process (retrying on failure), acknowledge."""

    def __init__(self, processor: StreamProcessor, consumer: Consumer, clock: Clock) -> None:
        self.processor = processor
        self.consumer = consumer
        self._clock = clock
        self.error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._process_batch: Callable[[Batch], Awaitable[None]] | None = getattr(
            processor, "process_batch", None
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"processor {self.consumer.key}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        cursor = self.consumer.cursor
        try:
            while True:
                batch = await cursor.next_batch(idle_timeout_ms=IDLE_CHECKPOINT_MS)
                if batch.events or (
                    self._process_batch is not None and batch.through > self.consumer.checkpoint
                ):
                    await self._process(batch)
                if batch.through > self.consumer.checkpoint:
                    await self.consumer.ack(batch.through)
        except (Compacted, CursorClosed) as exc:
            self.error = exc
            log.warning("processor %s stopped: %s", self.consumer.key, exc)

    async def _process(self, batch: Batch) -> None:
        events = batch.events
        attempt = 0
        while True:
            try:
                if self._process_batch is not None:
                    await self._process_batch(batch)
                else:
                    await self.processor.process(events)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                attempt += 1
                self.consumer.failures += 1
                delay = min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** min(attempt, 20))
                delay *= random.uniform(0.5, 1.0)
                log.exception(
                    "processor %s failed on seq %d..%d (attempt %d); retrying in %.0f ms",
                    self.consumer.key, events[0].seq if events else batch.through,
                    batch.through, attempt, delay,
                )  # fmt: skip
                await self._clock.sleep(delay)
