"""``StreamComputingEngine``: runs pipelines as stream processors, one change stream each.

Each pipeline reads a system stream ``_pipeline.<name>`` (its sources' key patterns) through
a ``PipelineProcessor``. State is checkpointed under the pipeline's name; registering a
pipeline again (after a restart, or from the next run of a program) resumes from it if the
definition's fingerprint is the same, and a different definition must say ``replace=True``
to discard it. SQL pipelines and streams (``engine.sql``) are persisted as system records and
come back by themselves; Python pipelines are registered by the program, or declared by the
node's YAML (``declare.py``), which stores how to build them again (``rebuild``).

A declared pipeline its file no longer declares is *orphaned*: stopped, its state and results
kept and readable, its checkpoint still holding back change-log retention, until it is
deleted (``remove``) or pruned. Declared again, it resumes from its checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from changestream import (
    ChangeStreamManager,
    Clock,
    Orphan,
    Orphaned,
    Ownership,
    OwnershipConflict,
    StreamConfig,
    UnknownStream,
)
from changestream.aio import cancel_and_wait
from kvdb import Store

from .errors import IncompatibleState, PipelineExists, UnknownPipeline
from .pipeline import StreamPipeline
from .processor import PipelineProcessor
from .runtime import PipelineRuntime
from .state import checkpoint_name, state_prefix

if TYPE_CHECKING:
    from .declare import PipelineDeclaration, PipelinesDeclared

__all__ = ["Rebuild", "StreamComputingEngine"]

log = logging.getLogger("compute")

STREAM_PREFIX = "_pipeline."
PYTHON_RECORDS = "compute/python/pipeline/"  # declared Python pipelines: how to rebuild them

Rebuild = Callable[[Mapping[str, Any]], StreamPipeline]  # a declaration's builder -> pipeline


class StreamComputingEngine:
    """``checkpoint_interval_ms``: how often a running pipeline saves its state (0: after
    every batch); a crash recomputes at most that much. ``batch_size`` and
    ``batch_timeout_ms`` shape the batches each pipeline's stream delivers. ``rebuild``
    builds a declared Python pipeline again from the ``builder`` it was declared with (the
    node resolves ``function: package.module:builder``), so it comes back after a restart."""

    def __init__(
        self,
        store: Store,
        streams: ChangeStreamManager,
        *,
        clock: Clock | None = None,
        checkpoint_interval_ms: int = 1000,
        batch_size: int = 1000,
        batch_timeout_ms: int = 20,
        rebuild: Rebuild | None = None,
    ) -> None:
        from .sql.engine import StreamSQLEngine  # the SQL layer is built on this one

        self.store = store
        self.streams = streams
        self.clock: Clock = clock or streams.clock
        self.checkpoint_interval_ms = checkpoint_interval_ms
        self.batch_size = batch_size
        self.batch_timeout_ms = batch_timeout_ms
        self.rebuild = rebuild
        self._pipelines: dict[str, PipelineProcessor] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.sql = StreamSQLEngine(self)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Remove pipeline streams left by the previous run (each registration makes its own
        again), start the periodic checkpoints, and bring back the SQL objects."""
        for stream in self.streams.list():
            if stream.name.startswith(STREAM_PREFIX):
                await self.streams.remove(stream.name)
        if self.checkpoint_interval_ms > 0:
            self._flusher = asyncio.create_task(self._flush_periodically(), name="compute flush")
        await self.sql.start()
        await self._restore_declared_python()

    async def _restore_declared_python(self) -> None:
        """Bring back the Python pipelines a file declared: running, or held as orphans."""
        for key, raw in self.store.list_system_records(PYTHON_RECORDS):
            name = key[len(PYTHON_RECORDS) :]
            doc, ownership = Ownership.split(_json_object(raw))
            try:
                if self.rebuild is None:
                    raise ValueError("this engine was given no way to rebuild pipelines")
                pipeline = self.rebuild(doc["builder"])
            except Exception as exc:
                log.error(
                    "pipeline %s (declared by %s, built by %s) cannot be built again: %s; it "
                    "stays stopped, its state kept", name, ownership.owner, doc.get("builder"), exc,
                )  # fmt: skip
                continue
            if ownership.orphaned:
                self.hold(pipeline, ownership)
                continue
            try:
                await self.register(pipeline, origin="python", ownership=ownership)
            except IncompatibleState:
                log.warning("pipeline %s: its state is from another version; recomputing", name)
                await self.register(pipeline, replace=True, origin="python", ownership=ownership)

    async def declare(
        self,
        declarations: Sequence[PipelineDeclaration],
        *,
        owner: str,
        prune: bool = False,
        dry_run: bool = False,
    ) -> PipelinesDeclared:
        """Apply ``owner``'s pipelines (SQL scripts and Python pipelines) under the rule of
        ``changestream/declare.py``: see ``compute/declare.py``. ``dry_run`` only checks, and
        works before ``start`` too."""
        from .declare import declare_pipelines

        if dry_run:
            self.sql.load()
        return await declare_pipelines(
            self, declarations, owner=owner, prune=prune, dry_run=dry_run
        )

    async def stop(self) -> None:
        """Stop every pipeline, saving its state."""
        flusher, self._flusher = self._flusher, None
        await cancel_and_wait(flusher)
        for processor in list(self._pipelines.values()):
            await self._stop(processor)
        self._pipelines.clear()

    async def _flush_periodically(self) -> None:
        while True:
            await self.clock.sleep(self.checkpoint_interval_ms)
            for processor in list(self._pipelines.values()):
                try:
                    await processor.flush()
                except Exception:
                    log.exception("checkpoint of pipeline %s failed", processor.pipeline_name)

    # -- pipelines ----------------------------------------------------------------------------

    async def register(
        self,
        pipeline: StreamPipeline,
        *,
        replace: bool = False,
        origin: str = "python",
        sql: str | None = None,
        ownership: Ownership | None = None,
    ) -> PipelineProcessor:
        """Start ``pipeline``, resuming its saved state if it has any. ``replace`` stops a
        running pipeline of the same name, and discards saved state of a different
        definition (else ``PipelineExists`` / ``IncompatibleState``). ``ownership`` is for
        declarations: one a file declares is replaced only by its declaration."""
        async with self._lock:
            processor = PipelineProcessor(
                pipeline, self.store, self.clock,
                checkpoint_interval_ms=self.checkpoint_interval_ms, origin=origin, sql=sql,
            )  # fmt: skip
            processor.ownership = ownership or Ownership()
            name = pipeline.name
            existing = self._pipelines.get(name)
            if existing is not None:
                _check_owner(existing, processor.ownership)
            if existing is not None and not replace:
                raise PipelineExists(name)
            stored = (
                existing.fingerprint
                if existing is not None
                else PipelineRuntime.stored_fingerprint(processor.load_records())
            )
            if stored is not None and stored != processor.fingerprint and not replace:
                raise IncompatibleState(name)
            if existing is not None:
                await self._stop(existing)
                del self._pipelines[name]
            if stored is not None and stored != processor.fingerprint:
                await self._delete_state(name)
                stored = None
            if stored is None:
                await processor.start_at(self._start_position(pipeline))
            else:
                processor.resume(processor.load_records())
            await self._attach(processor)
            self._pipelines[name] = processor
            return processor

    def hold(self, pipeline: StreamPipeline, ownership: Ownership, sql: str | None = None) -> None:
        """Keep an orphaned pipeline's saved state readable without running it."""
        origin = "python" if sql is None else "sql"
        processor = PipelineProcessor(
            pipeline, self.store, self.clock,
            checkpoint_interval_ms=self.checkpoint_interval_ms, origin=origin, sql=sql,
        )  # fmt: skip
        stored = PipelineRuntime.stored_fingerprint(processor.load_records())
        if stored is not None and stored == processor.fingerprint:
            processor.resume(processor.load_records())
        elif stored is not None:
            log.warning("orphaned pipeline %s: its state is from another version", pipeline.name)
        processor.ownership = ownership
        processor.status = "orphaned"
        self._pipelines[pipeline.name] = processor

    async def orphan(self, name: str) -> None:
        """Stop the pipeline and keep it, its state and results: its owner dropped it."""
        async with self._lock:
            processor = self.get(name)
            await self._stop(processor)
            processor.ownership = processor.ownership.orphan()
            processor.status = "orphaned"

    def orphans(self) -> tuple[Orphan, ...]:
        """The orphaned pipelines and the checkpoint with which each still pins retention."""
        found = []
        for processor in self.list():
            if processor.ownership.orphaned:
                checkpoint = self.store.get_checkpoint(checkpoint_name(processor.pipeline_name))
                pins = {} if checkpoint is None else {checkpoint.name: checkpoint.seq}
                found.append(
                    Orphan(
                        "pipeline", processor.pipeline_name, processor.ownership.owner or "",
                        pins, f"DELETE /pipelines/{processor.pipeline_name}",
                        note="its results stay readable",
                    )
                )  # fmt: skip
        return tuple(found)

    def _start_position(self, pipeline: StreamPipeline) -> int:
        start = pipeline.options.start_from
        if start == "latest":
            return self.store.last_seq
        if start == "earliest":
            return self.store.oldest_seq() - 1
        assert isinstance(start, int)
        return start - 1

    async def _attach(self, processor: PipelineProcessor) -> None:
        sources = processor.pipeline.sources()
        patterns: tuple[str, ...] = ()
        if all(source.key_patterns for source in sources):
            patterns = tuple(dict.fromkeys(p for s in sources for p in s.key_patterns))
        event_types = frozenset(t for source in sources for t in source.event_types)
        # One source's origins select on the stream; several sources' are applied per source.
        same_origins = all(source.origins == sources[0].origins for source in sources)
        config = StreamConfig(
            processor.stream_name,
            event_types=event_types,
            key_patterns=patterns,
            origins=sources[0].origins if same_origins else (),
            buffer_size=max(10 * self.batch_size, 10_000),
            batch_size=self.batch_size,
            batch_timeout_ms=self.batch_timeout_ms,
            enable_persistence=False,
            start_from=processor.runtime.seq + 1,
        )
        with contextlib.suppress(UnknownStream):
            await self.streams.remove(config.name)
        stream = await self.streams.create(config, processors=[processor])

        def consumer_stats() -> Any:
            consumer = stream.consumers.get(processor.name)
            return None if consumer is None else consumer.stats()

        processor.stream_stats = consumer_stats
        processor.status = "running"

    async def _stop(self, processor: PipelineProcessor) -> None:
        async with processor.lock:  # never in the middle of a batch
            with contextlib.suppress(UnknownStream):
                await self.streams.remove(processor.stream_name)
            processor.stream_stats = None
            await processor.flush_locked()
            if processor.status not in ("failed", "orphaned"):
                processor.status = "stopped"
        processor.feed.close()

    async def remove(self, name: str) -> None:
        """Stop the pipeline and delete its state and checkpoint (releasing the change-log
        retention it held). Also works for saved state of a pipeline not registered now."""
        async with self._lock:
            processor = self._pipelines.pop(name, None)
            if processor is not None:
                await self._stop(processor)
            elif not self.has_state(name):
                raise UnknownPipeline(name)
            await self._delete_state(name)
            await self.store.delete_system_record(PYTHON_RECORDS + name)
        await self.sql.forget_pipeline(name)

    def has_state(self, name: str) -> bool:
        return self.store.get_system_record(state_prefix(name) + "meta") is not None

    def stored_fingerprint(self, name: str) -> str | None:
        """The fingerprint of the definition whose state is saved under ``name``."""
        raw = self.store.get_system_record(state_prefix(name) + "meta")
        return None if raw is None else PipelineRuntime.stored_fingerprint({"meta": raw})

    async def _delete_state(self, name: str) -> None:
        keys = [key for key, _ in self.store.list_system_records(state_prefix(name))]
        await self.store.write_system_state({}, keys)
        await self.store.delete_checkpoint(checkpoint_name(name))

    def get(self, name: str) -> PipelineProcessor:
        try:
            return self._pipelines[name]
        except KeyError:
            raise UnknownPipeline(name) from None

    def list(self) -> list[PipelineProcessor]:
        return [self._pipelines[name] for name in sorted(self._pipelines)]

    def __contains__(self, name: object) -> bool:
        return name in self._pipelines

    def stats(self) -> dict[str, dict[str, Any]]:
        return {processor.pipeline_name: processor.stats() for processor in self.list()}


def _check_owner(existing: PipelineProcessor, ownership: Ownership) -> None:
    """Only a pipeline's declaration replaces a declared pipeline (the API and programs
    change what they made); an orphan is declared again, or deleted."""
    owner = existing.ownership.owner
    if owner is None or ownership.owner == owner:
        return
    if existing.ownership.orphaned:
        raise Orphaned("pipeline", existing.pipeline_name, owner)
    raise OwnershipConflict.not_the_api("pipeline", existing.pipeline_name, owner)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
