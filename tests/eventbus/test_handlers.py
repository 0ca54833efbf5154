"""Handlers: plain and async functions, conditions, batches by size and by interval (with an
injected clock), per-handler order, and isolation from slow or blocking handlers."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from changestream.testing import ManualClock
from eventbus import (
    BatchEventHandler,
    BusSetup,
    ConditionalEventHandler,
    EventBus,
    EventRoute,
    FunctionEventHandler,
    InvalidHandler,
)
from kvdb import ChangeEvent, Put, Store
from tests.conftest import eventually
from tests.eventbus.conftest import FAST_RETRY, Recorder


def route(*handlers: str, patterns: tuple[str, ...] = ()) -> EventRoute:
    return EventRoute(f"to-{'-'.join(handlers)}", key_patterns=patterns, handler_names=handlers)


async def test_sync_and_async_functions_see_their_events_in_order(
    make_bus: Any, store: Store
) -> None:
    seen_sync: list[int] = []
    seen_async: list[int] = []
    threads: set[str] = set()

    def on_event(event: ChangeEvent) -> None:
        threads.add(threading.current_thread().name)
        seen_sync.append(event.seq)

    async def on_event_async(event: ChangeEvent) -> None:
        await asyncio.sleep(0)
        seen_async.append(event.seq)

    await make_bus(
        BusSetup(
            handlers=(
                FunctionEventHandler("sync", on_event),
                FunctionEventHandler("async", on_event_async),
            ),
            routes=(route("sync", "async"),),
        )
    )
    for start in range(0, 300, 30):
        await store.batch([Put(f"k{i}", b"v") for i in range(start, start + 30)])
    await eventually(lambda: len(seen_sync) == 300 and len(seen_async) == 300)
    assert seen_sync == seen_async == list(range(1, 301))
    assert threads and all(name.startswith("bus-sync") for name in threads)  # off the loop


async def test_conditional_handler_skips_what_its_predicate_declines(
    make_bus: Any, store: Store
) -> None:
    got: list[str] = []
    handler = ConditionalEventHandler(
        "big-orders", lambda e: int(e.new_value or b"0") > 100, lambda e: got.append(e.key)
    )

    async def is_even(event: ChangeEvent) -> bool:
        return event.seq % 2 == 0

    async def record(event: ChangeEvent) -> None:
        got.append(f"even:{event.seq}")

    evens = ConditionalEventHandler("evens", is_even, record)
    bus = await make_bus(
        BusSetup(handlers=(handler, evens), routes=(route("big-orders", "evens"),))
    )
    await store.batch([Put("o1", b"50"), Put("o2", b"500"), Put("o3", b"101")])
    await eventually(lambda: len(got) == 3)
    assert sorted(got) == ["even:2", "o2", "o3"]
    assert handler.skipped == 1 and evens.skipped == 2
    assert bus.describe("big-orders")["skipped"] == 1


def holds(bus: EventBus, count: int) -> bool:
    """Whether the "batches" handler itself holds ``count`` events (its interval counts from
    when it took the first of them), none of them still in its stream cursor."""
    in_cursor = bus.streams.get(bus.config.stream).consumers["batches"].cursor.pending
    return in_cursor == 0 and bus.stats()["batches"].pending == count


async def test_batch_handler_flushes_by_size_and_by_interval(
    make_bus: Any, store: Store, manual_clock: ManualClock
) -> None:
    batches: list[list[int]] = []

    async def on_batch(events: list[ChangeEvent]) -> None:
        batches.append([e.seq for e in events])

    handler = BatchEventHandler("batches", on_batch, batch_size=4, flush_interval_ms=500)
    bus = await make_bus(
        BusSetup(handlers=(handler,), routes=(route("batches"),)), clock=manual_clock
    )
    await store.batch([Put(f"k{i}", b"v") for i in range(10)])
    await eventually(lambda: len(batches) == 2 and holds(bus, 2))
    assert batches == [[1, 2, 3, 4], [5, 6, 7, 8]]  # full batches go at once
    await manual_clock.advance(499)
    await asyncio.sleep(0.05)
    assert len(batches) == 2  # the partial one waits for its interval...
    await manual_clock.advance(1)
    await eventually(lambda: len(batches) == 3)
    assert batches[2] == [9, 10]  # ...and goes when it has waited flush_interval_ms
    await store.put("k10", b"v")
    await eventually(lambda: holds(bus, 1))
    assert len(batches) == 3
    await manual_clock.advance(500)
    await eventually(lambda: batches[-1] == [11])


async def test_sync_batch_function_gets_lists(make_bus: Any, store: Store) -> None:
    sizes: list[int] = []
    handler = BatchEventHandler("b", lambda events: sizes.append(len(events)), 50, 0)
    await make_bus(BusSetup(handlers=(handler,), routes=(route("b"),)))
    await store.batch([Put(f"k{i}", b"v") for i in range(120)])
    await eventually(lambda: sum(sizes) == 120)
    assert max(sizes) <= 50


async def test_a_stalled_handler_delays_nobody(make_bus: Any, store: Store) -> None:
    stalled, healthy = Recorder("stalled"), Recorder("healthy")
    stalled.gate.clear()
    blocked = threading.Event()
    blocking_seen: list[int] = []

    def blocking(event: ChangeEvent) -> None:  # blocks its own thread, not the loop
        blocked.wait(10)
        blocking_seen.append(event.seq)

    await make_bus(
        BusSetup(
            handlers=(stalled, healthy, FunctionEventHandler("blocking", blocking)),
            routes=(route("stalled", "healthy", "blocking"),),
        )
    )
    for i in range(50):
        await store.put(f"k{i}", b"v")  # writers are never held up
    await eventually(lambda: len(healthy.seqs) == 50)
    assert stalled.seqs == [] and blocking_seen == []
    stalled.gate.set()
    blocked.set()
    await eventually(lambda: len(stalled.seqs) == 50 and len(blocking_seen) == 50)
    assert stalled.seqs == healthy.seqs == blocking_seen == list(range(1, 51))


async def test_a_slow_handler_falls_back_to_the_log_and_loses_nothing(
    make_bus: Any, store: Store
) -> None:
    from eventbus import BusConfig

    slow, fast = Recorder("slow"), Recorder("fast")
    slow.gate.clear()
    bus = await make_bus(
        BusSetup(handlers=(slow, fast), routes=(route("slow", "fast"),)),
        config=BusConfig(buffer_size=20, batch_size=10),
    )
    for start in range(0, 200, 25):
        await store.batch([Put(f"k{i}", b"v") for i in range(start, start + 25)])
    await eventually(lambda: len(fast.seqs) == 200)
    assert bus.stats()["slow"].pending <= 20  # its queue is bounded...
    assert bus.streams.get("_bus").consumers["slow"].stats().overflows >= 1  # ...it fell back
    slow.gate.set()
    await eventually(lambda: len(slow.seqs) == 200)
    assert slow.seqs == list(range(1, 201))


def test_handler_arguments_are_checked() -> None:
    with pytest.raises(InvalidHandler, match="fn must be callable"):
        FunctionEventHandler("f", "not a function")  # type: ignore[arg-type]
    with pytest.raises(InvalidHandler, match="batch_size must be an integer >= 1"):
        BatchEventHandler("b", print, batch_size=0)
    with pytest.raises(InvalidHandler, match="flush_interval_ms must be a number >= 0"):
        BatchEventHandler("b", print, flush_interval_ms=-1)
    with pytest.raises(InvalidHandler, match="handler name '_x' must be"):
        FunctionEventHandler("_x", print)


async def test_a_plain_function_returning_a_coroutine_is_reported(
    make_bus: Any, store: Store
) -> None:
    async def forgot_async(event: ChangeEvent) -> None:
        return None

    handler = FunctionEventHandler("mistake", lambda e: forgot_async(e), retry=FAST_RETRY)
    bus = await make_bus(BusSetup(handlers=(handler,), routes=(route("mistake"),)))
    await store.put("k", b"v")
    await eventually(lambda: bus.dead_letters.count("mistake") == 1)
    letter = bus.dead_letter("mistake", 1)
    assert "declare it 'async def'" in letter.error and letter.attempts == 3
