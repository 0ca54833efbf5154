"""The engine: pipelines as stream processors over a real store, their state across
restarts, failures, subscribers, sinks and stats."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import pytest

from changestream import ChangeStreamManager
from changestream.testing import ManualClock
from compute import (
    Count,
    IncompatibleState,
    PipelineExists,
    PipelineProcessor,
    StreamComputingEngine,
    StreamPipeline,
    Sum,
    Tumbling,
    UnknownPipeline,
)
from compute.state import checkpoint_name, state_prefix
from kvdb import Store
from tests.conftest import eventually

from .conftest import settle, write


def clicks(name: str = "clicks", **options: Any) -> StreamPipeline:
    return (
        StreamPipeline(name, ["clicks/.*"], event_time="t", **options)
        .key_by("page")
        .window(Tumbling(10))
        .aggregate(n=Count(), total=Sum("v"))
    )


def docs(*pairs: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"page": page, "t": t, "v": 1} for page, t in pairs]


def table(processor: PipelineProcessor) -> list[tuple[Any, ...]]:
    return [(r["page"], r["window_start"], r["n"]) for r in processor.results().rows]


async def test_a_pipeline_reads_the_log_from_the_earliest_event(
    store: Store, engine: StreamComputingEngine
) -> None:
    await write(store, docs(("a", 1), ("b", 2), ("a", 3)))
    await write(store, [{"unrelated": True}], prefix="other")
    processor = await engine.register(clicks())
    await settle(processor, store)
    assert table(processor) == [("a", 0, 2), ("b", 0, 1)]
    await write(store, docs(("a", 12)))
    await settle(processor, store)
    assert table(processor) == [("a", 0, 2), ("b", 0, 1), ("a", 10, 1)]
    stats = processor.stats()
    assert stats["status"] == "running" and stats["events_in"] == 4 and stats["lag_events"] == 0
    assert [s.name for s in engine.streams.list()] == ["_pipeline.clicks"]


async def test_start_from_latest_skips_the_past_and_remembers_where_it_started(
    store: Store, engine: StreamComputingEngine
) -> None:
    await write(store, docs(("a", 1)))
    processor = await engine.register(clicks(start_from="latest"))
    await write(store, docs(("b", 2)))
    await settle(processor, store)
    assert table(processor) == [("b", 0, 1)]


async def test_state_survives_a_restart_and_resumes_where_it_stopped(
    store: Store, manager: ChangeStreamManager
) -> None:
    engine = StreamComputingEngine(store, manager, checkpoint_interval_ms=0, batch_timeout_ms=0)
    await engine.start()
    processor = await engine.register(clicks())
    await write(store, docs(("a", 1), ("a", 2)))
    await settle(processor, store)
    await engine.stop()
    await write(store, docs(("a", 3)))  # committed while the pipeline is down

    again = StreamComputingEngine(store, manager, checkpoint_interval_ms=0, batch_timeout_ms=0)
    await again.start()
    processor = await again.register(clicks())
    await settle(processor, store)
    assert table(processor) == [("a", 0, 3)]
    await again.stop()


async def test_a_crash_loses_nothing_it_cannot_recompute(
    store: Store, manager: ChangeStreamManager
) -> None:
    """Checkpoints only at registration, then a 'crash' (the stream and processor vanish
    without a final checkpoint): the next run replays the log from the checkpoint."""
    engine = StreamComputingEngine(store, manager, checkpoint_interval_ms=10**9, batch_timeout_ms=0)
    await engine.start()
    processor = await engine.register(clicks())
    await write(store, docs(("a", 1), ("b", 5), ("a", 11)))
    await settle(processor, store)
    expected = table(processor)
    assert processor.checkpointed_seq == 0  # nothing saved since the start
    await manager.remove(processor.stream_name)  # the crash: no flush, no final checkpoint

    again = StreamComputingEngine(store, manager, checkpoint_interval_ms=0, batch_timeout_ms=0)
    await again.start()
    processor = await again.register(clicks())
    await settle(processor, store)
    assert table(processor) == expected
    await again.stop()


async def test_changed_definitions_must_say_replace(
    store: Store, manager: ChangeStreamManager
) -> None:
    engine = StreamComputingEngine(store, manager, checkpoint_interval_ms=0, batch_timeout_ms=0)
    await engine.start()
    processor = await engine.register(clicks())
    await write(store, docs(("a", 1)))
    await settle(processor, store)
    with pytest.raises(PipelineExists):
        await engine.register(clicks())  # the same name, while it runs
    await engine.stop()

    again = StreamComputingEngine(store, manager, checkpoint_interval_ms=0, batch_timeout_ms=0)
    await again.start()
    changed = clicks().with_options(version="2")
    with pytest.raises(IncompatibleState, match="replace=True"):
        await again.register(changed)  # saved state is the old definition's
    processor = await again.register(changed, replace=True)
    await settle(processor, store)
    assert table(processor) == [("a", 0, 1)]  # recomputed from the log
    await again.stop()


async def test_remove_deletes_state_and_releases_retention(
    store: Store, engine: StreamComputingEngine
) -> None:
    processor = await engine.register(clicks())
    await write(store, docs(("a", 1)))
    await settle(processor, store)
    assert store.get_checkpoint(checkpoint_name("clicks")) is not None
    await engine.remove("clicks")
    assert store.list_system_records(state_prefix("clicks")) == []
    assert store.get_checkpoint(checkpoint_name("clicks")) is None
    assert "clicks" not in engine and engine.streams.list() == []
    with pytest.raises(UnknownPipeline):
        await engine.remove("clicks")


async def test_a_failing_callback_stops_the_pipeline_and_keeps_the_last_good_state(
    store: Store, engine: StreamComputingEngine
) -> None:
    pipeline = (
        StreamPipeline("fragile", ["clicks/.*"], event_time="t")
        .map(lambda r: r if r["v"] < 100 else None, name="guard")
        .window(Tumbling(10))
        .aggregate(n=Count())
    )
    processor = await engine.register(pipeline)
    await write(store, docs(("a", 1)))
    await settle(processor, store)
    await write(store, [{"page": "b", "t": 2, "v": 1}, {"page": "c", "t": 3, "v": 500}])
    await eventually(lambda: processor.status == "failed", 5)
    stats = processor.stats()
    assert "step 'guard'" in stats["error"] and "returned None" in stats["error"]
    assert [r["n"] for r in processor.results().rows] == [1]  # the batch that failed is undone


async def test_subscribers_get_each_batch_of_updates(
    store: Store, engine: StreamComputingEngine
) -> None:
    processor = await engine.register(clicks())
    subscription = processor.subscribe()
    await write(store, docs(("a", 1), ("a", 2)))
    async with asyncio.timeout(5):
        updates = await subscription.next()
    assert updates is not None
    assert [(u.op, u.row["page"], u.row["n"]) for u in updates] == [
        ("upsert", "a", 1),
        ("upsert", "a", 2),
    ]
    subscription.close()
    assert await subscription.next() is None


async def test_sinks_may_be_async_and_see_every_update(
    store: Store, engine: StreamComputingEngine
) -> None:
    seen: list[Any] = []

    async def deliver(update: Any) -> None:
        await asyncio.sleep(0)
        seen.append((update.op, update.row["n"]))

    processor = await engine.register(clicks().sink(deliver))
    await write(store, docs(("a", 1), ("a", 2)))
    await settle(processor, store)
    assert seen == [("upsert", 1), ("upsert", 2)]


class AsyncSink:
    """A sink that is an object with an ``async def __call__``."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def __call__(self, update: Any) -> None:
        await asyncio.sleep(0)
        self.seen.append((update.op, update.row["n"]))


@pytest.mark.parametrize("wrap", [lambda fn: fn, functools.partial], ids=["object", "partial"])
async def test_an_async_callable_sink_is_awaited(
    store: Store, engine: StreamComputingEngine, wrap: Callable[[Any], Any]
) -> None:
    sink = AsyncSink()
    pipeline = clicks().sink(wrap(sink))
    assert pipeline.stages[-1].is_async  # type: ignore[attr-defined]
    processor = await engine.register(pipeline)
    await write(store, docs(("a", 1), ("a", 2)))
    await settle(processor, store)
    assert sink.seen == [("upsert", 1), ("upsert", 2)]


async def test_stats_of_all_pipelines(store: Store, engine: StreamComputingEngine) -> None:
    await engine.register(clicks())
    await engine.register(clicks("other", emit="final"))
    stats = engine.stats()
    assert sorted(stats) == ["clicks", "other"]
    assert stats["other"]["emit"] == "final"
    assert stats["clicks"]["columns"] == ["page", "window_start", "window_end", "n", "total"]
    assert {
        "events_in",
        "late_dropped",
        "windows_fired",
        "lag_events",
        "lag_ms",
        "watermark",
    } <= set(stats["clicks"])


async def test_periodic_checkpoints_follow_the_clock(store: Store) -> None:
    clock = ManualClock()
    manager = ChangeStreamManager(store, clock=clock)
    await manager.start()
    engine = StreamComputingEngine(store, manager, checkpoint_interval_ms=1000, batch_timeout_ms=0)
    await engine.start()
    processor = await engine.register(clicks())
    await write(store, docs(("a", 1)))
    await settle(processor, store)
    assert processor.checkpointed_seq == 0
    await clock.advance(1000)
    await eventually(lambda: processor.checkpointed_seq == store.last_seq, 5)
    await engine.stop()
    await manager.stop()
