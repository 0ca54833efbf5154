"""``PipelineProcessor``: a running pipeline, attached to its change stream as a processor.

It owns the pipeline's runtime, checkpoints its state, publishes updates to subscribers and
calls sinks. Each processed batch is applied, then published, then (every
``checkpoint_interval_ms``) checkpointed with the seq it reflects, in one transaction. The
stream's own consumer checkpoint is not used: the pipeline's is the one that counts.

If a user callback fails (``StepError``) the pipeline stops with status ``failed`` and that
error, and its state reverts to the last checkpoint, so what readers see is a state the
pipeline really was in. Fixing the code and registering it again resumes from there.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Sequence
from typing import Any

from changestream import Clock, Ownership
from kvdb import ChangeEvent, Store

from .errors import StepError
from .pipeline import StreamPipeline
from .results import ResultTable, UpdateFeed, UpdateSubscription
from .runtime import PipelineRuntime
from .state import checkpoint_name, state_prefix
from .timestamps import format_timestamp

__all__ = ["PipelineProcessor"]

log = logging.getLogger("compute")


class PipelineProcessor:
    name = "pipeline"  # the consumer name within the pipeline's stream

    def __init__(
        self,
        pipeline: StreamPipeline,
        store: Store,
        clock: Clock,
        *,
        checkpoint_interval_ms: int,
        origin: str = "python",
        sql: str | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.runtime = PipelineRuntime(pipeline)
        self.store = store
        self.clock = clock
        self.checkpoint_interval_ms = checkpoint_interval_ms
        self.origin = origin
        self.sql = sql
        self.feed = UpdateFeed()
        self.status = "starting"  # running, stopped, failed, or orphaned (declare.py)
        self.ownership = Ownership()
        self.error: StepError | None = None
        self.lock = asyncio.Lock()
        self.checkpointed_seq = -1
        self.checkpoints = 0
        self._last_checkpoint_ms = clock.now_ms()
        self._unsaved: tuple[dict[str, bytes], set[str]] = ({}, set())
        self.stream_stats: Any = None  # set by the engine: () -> consumer stats or None

    @property
    def pipeline_name(self) -> str:
        return self.pipeline.name

    @property
    def stream_name(self) -> str:
        return f"_pipeline.{self.pipeline.name}"

    @property
    def fingerprint(self) -> str:
        return self.runtime.fingerprint

    # -- the stream processor -----------------------------------------------------------------

    async def process(self, batch: Sequence[ChangeEvent]) -> None:
        async with self.lock:
            if self.status == "failed":
                return
            runtime = self.runtime
            runtime.listening = self.feed.active or bool(runtime.sinks)
            try:
                updates, outputs = runtime.process(batch)
                if outputs and runtime.sinks:
                    await self._deliver(outputs)
            except StepError as exc:
                self._fail(exc)
                return
            self.feed.publish(updates)
            if self._checkpoint_due():
                await self._checkpoint()

    async def _deliver(self, outputs: list[Any]) -> None:
        for sink in self.runtime.sinks:
            for output in outputs:
                try:
                    if sink.is_async:
                        await sink.fn(output)
                    elif inspect.isawaitable(result := sink.fn(output)):
                        await result  # a plain function that returned an awaitable anyway
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    raise StepError(
                        self.pipeline_name,
                        sink.name,
                        f"the sink raised {type(exc).__name__}: {exc}",
                    ) from exc

    def _fail(self, error: StepError) -> None:
        log.error("pipeline %s failed: %s", self.pipeline_name, error.message)
        self.status = "failed"
        self.error = error
        self.runtime = PipelineRuntime(self.pipeline)  # back to the last checkpoint
        records = self.load_records()
        if records:
            self.runtime.restore(records)
        self._unsaved = ({}, set())
        self.feed.close()

    # -- checkpoints --------------------------------------------------------------------------

    def load_records(self) -> dict[str, bytes]:
        prefix = state_prefix(self.pipeline_name)
        return {key[len(prefix) :]: raw for key, raw in self.store.list_system_records(prefix)}

    def _checkpoint_due(self) -> bool:
        if self.runtime.seq == self.checkpointed_seq:
            return False
        elapsed = self.clock.now_ms() - self._last_checkpoint_ms
        return elapsed >= self.checkpoint_interval_ms

    async def flush(self) -> None:
        """Checkpoint now if anything changed since the last checkpoint."""
        async with self.lock:
            await self.flush_locked()

    async def flush_locked(self) -> None:
        if self.runtime.seq != self.checkpointed_seq and self.status != "failed":
            await self._checkpoint()

    async def _checkpoint(self) -> None:
        """Write what changed, the meta record and the seq, in one transaction. If the write
        fails the changes are kept and go with the next attempt."""
        puts, deletes = self._unsaved
        new_puts, new_deletes = self.runtime.checkpoint_records()
        for name in new_deletes:
            puts.pop(name, None)
        deletes |= new_deletes
        deletes -= set(new_puts)
        puts.update(new_puts)
        prefix = state_prefix(self.pipeline_name)
        seq = self.runtime.seq
        await self.store.write_system_state(
            {prefix + name: raw for name, raw in puts.items()},
            [prefix + name for name in deletes],
            checkpoint=(checkpoint_name(self.pipeline_name), seq),
        )
        self._unsaved = ({}, set())
        self.checkpointed_seq = seq
        self.checkpoints += 1
        self._last_checkpoint_ms = self.clock.now_ms()

    async def start_at(self, seq: int) -> None:
        """A pipeline with no saved state: start after ``seq``, and save that at once, so a
        restart resumes there (and change-log retention keeps what it has not read)."""
        self.runtime.seq = seq
        await self._checkpoint()

    def resume(self, records: dict[str, bytes]) -> None:
        self.runtime.restore(records)
        self.checkpointed_seq = self.runtime.seq

    # -- reading ------------------------------------------------------------------------------

    def results(self) -> ResultTable:
        return self.runtime.results()

    def subscribe(self) -> UpdateSubscription:
        """Updates from the next processed batch on (read ``results()`` first for a snapshot:
        nothing is processed between the two calls, as both run on the event loop)."""
        return self.feed.subscribe()

    def stats(self) -> dict[str, Any]:
        runtime_stats = self.runtime.stats()
        watermark = runtime_stats.pop("watermark")
        max_time = runtime_stats.pop("max_event_time")
        consumer = self.stream_stats() if self.stream_stats is not None else None
        lag_events = (
            consumer.lag_events
            if consumer is not None
            else max(0, self.store.last_seq - self.runtime.seq)
        )
        return {
            "name": self.pipeline_name,
            "origin": self.origin,
            **self.ownership.to_dict(),
            "status": self.status,
            "error": None if self.error is None else self.error.message,
            "emit": self.pipeline.options.emit,
            "columns": [column.name for column in self.runtime.columns],
            **runtime_stats,
            "watermark": None if watermark is None else format_timestamp(watermark),
            "max_event_time": None if max_time is None else format_timestamp(max_time),
            "checkpoint_seq": self.checkpointed_seq,
            "checkpoints": self.checkpoints,
            "lag_events": lag_events,
            "lag_ms": consumer.lag_ms if consumer is not None else 0.0,
            "subscribers": self.feed.subscribers,
        }
