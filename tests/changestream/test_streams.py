"""Streams and processors: order, filters, batching, parallelism, failures, overflow."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from changestream import (
    ChangeStreamManager,
    FunctionProcessor,
    StreamConfig,
)
from changestream.testing import ManualClock
from kvdb import ChangeEvent, Delete, EventType, Put, Store
from tests.changestream.conftest import Recorder
from tests.conftest import eventually


async def test_processor_sees_matching_events_in_order(
    manager: ChangeStreamManager, store: Store
) -> None:
    recorder = Recorder()
    config = StreamConfig("users", key_patterns=("users/.*",), batch_timeout_ms=0)
    await manager.create(config, processors=[recorder])
    for i in range(20):
        await store.put(f"users/{i}", b"v")
        await store.put(f"orders/{i}", b"v")
    await store.batch([Put("users/a", b"1"), Delete("users/0"), Put("other", b"x")])
    await recorder.wait_for(lambda r: len(r.events) == 22)
    assert [e.key for e in recorder.events][:3] == ["users/0", "users/1", "users/2"]
    assert recorder.seqs == sorted(recorder.seqs)
    assert recorder.events[-1].type is EventType.DELETE and recorder.events[-1].old_value == b"v"


async def test_event_type_filter(manager: ChangeStreamManager, store: Store) -> None:
    recorder = Recorder()
    await manager.create(
        StreamConfig("deletes", event_types=frozenset({EventType.DELETE}), batch_timeout_ms=0),
        processors=[recorder],
    )
    await store.put("a", b"1")
    await store.put("a", b"2")
    await store.delete("a")
    await recorder.wait_for(lambda r: len(r.events) == 1)
    assert recorder.events[0].type is EventType.DELETE


async def test_start_from_earliest_latest_and_a_seq(
    manager: ChangeStreamManager, store: Store
) -> None:
    await store.batch([Put(f"k{i}", b"v") for i in range(10)])
    earliest, latest, from_seq = Recorder("e"), Recorder("l"), Recorder("s")
    await manager.create(
        StreamConfig("e", start_from="earliest", batch_timeout_ms=0), processors=[earliest]
    )
    await manager.create(
        StreamConfig("l", start_from="latest", batch_timeout_ms=0), processors=[latest]
    )
    await manager.create(StreamConfig("s", start_from=7, batch_timeout_ms=0), processors=[from_seq])
    await store.put("new", b"v")
    for recorder, first in ((earliest, 1), (latest, 11), (from_seq, 7)):
        await recorder.wait_for(lambda r: bool(r.seqs) and r.seqs[-1] == 11)
        assert recorder.seqs == list(range(first, 12))


async def test_batches_close_on_size(manager: ChangeStreamManager, store: Store) -> None:
    recorder = Recorder()
    await manager.create(
        StreamConfig("s", batch_size=10, batch_timeout_ms=60_000), processors=[recorder]
    )
    await store.batch([Put(f"k{i}", b"v") for i in range(25)])
    await recorder.wait_for(lambda r: len(r.batches) == 2)
    assert [len(b) for b in recorder.batches] == [10, 10]
    await asyncio.sleep(0.05)
    assert len(recorder.batches) == 2  # the last 5 wait for the timeout


async def test_batches_close_on_timeout_with_an_injected_clock(store: Store) -> None:
    clock = ManualClock()
    manager = ChangeStreamManager(store, clock=clock)
    await manager.start()
    try:
        recorder = Recorder()
        await manager.create(
            StreamConfig("s", batch_size=100, batch_timeout_ms=500), processors=[recorder]
        )
        await store.batch([Put(f"k{i}", b"v") for i in range(3)])
        await clock.wait_for_deadline(500)
        await clock.advance(499)
        assert recorder.batches == []
        await clock.advance(1)
        await recorder.wait_for(lambda r: len(r.batches) == 1)
        assert len(recorder.batches[0]) == 3
        # the timeout counts from the batch's first event, not from the last one
        await store.put("a", b"v")
        await clock.wait_for_deadline(500)
        await clock.advance(300)
        await store.put("b", b"v")
        # "b" joins the open batch
        await eventually(lambda: manager.get("s").stats()["consumers"][0]["pending"] >= 2)
        await clock.advance(200)
        await recorder.wait_for(lambda r: len(r.batches) == 2)
        assert [e.key for e in recorder.batches[1]] == ["a", "b"]
    finally:
        await manager.stop()


async def test_parallel_processors_keep_their_own_pace(
    manager: ChangeStreamManager, store: Store
) -> None:
    fast, slow = Recorder("fast"), Recorder("slow")
    slow.gate.clear()
    stream = await manager.create(StreamConfig("s", batch_timeout_ms=0), processors=[fast, slow])
    for i in range(50):
        await store.put(f"k{i}", b"v")
    await fast.wait_for(lambda r: len(r.events) == 50)
    assert slow.events == []
    assert stream.consumers["fast"].checkpoint == 50
    assert stream.consumers["slow"].checkpoint == 0
    slow.gate.set()
    await slow.wait_for(lambda r: len(r.events) == 50)
    assert slow.seqs == fast.seqs == list(range(1, 51))


async def test_failing_processor_retries_the_same_batch(
    manager: ChangeStreamManager, store: Store
) -> None:
    seen: list[list[int]] = []
    attempts = 0

    async def flaky(batch: Sequence[ChangeEvent]) -> None:
        nonlocal attempts
        attempts += 1
        seen.append([e.seq for e in batch])
        if attempts <= 2:
            raise RuntimeError("downstream unavailable")

    stream = await manager.create(
        StreamConfig("s", batch_timeout_ms=0), processors=[FunctionProcessor("flaky", flaky)]
    )
    await store.batch([Put(f"k{i}", b"v") for i in range(3)])
    await eventually(lambda: stream.consumers["flaky"].checkpoint >= 3)
    assert seen == [[1, 2, 3]] * 3  # never skipped, never split
    assert stream.stats()["consumers"][0]["failures"] == 2


class AsyncCallable:
    """A processor function that is an object with an ``async def __call__``."""

    def __init__(self) -> None:
        self.seqs: list[int] = []

    async def __call__(self, batch: Sequence[ChangeEvent]) -> None:
        await asyncio.sleep(0)
        self.seqs.extend(event.seq for event in batch)


@pytest.mark.parametrize("wrap", [lambda fn: fn, functools.partial], ids=["object", "partial"])
async def test_an_async_callable_object_is_awaited_before_its_batch_is_acknowledged(
    manager: ChangeStreamManager, store: Store, wrap: Callable[[Any], Any]
) -> None:
    target = AsyncCallable()
    stream = await manager.create(
        StreamConfig("s", batch_timeout_ms=0),
        processors=[FunctionProcessor("obj", wrap(target))],
    )
    await store.batch([Put(f"k{i}", b"v") for i in range(3)])
    await eventually(lambda: stream.consumers["obj"].checkpoint >= 3)
    assert target.seqs == [1, 2, 3]  # processed, not just acknowledged


async def test_sync_function_processor_runs_off_the_loop(
    manager: ChangeStreamManager, store: Store
) -> None:
    import threading

    threads: set[str] = set()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def blocking(batch: Sequence[ChangeEvent]) -> None:
        threads.add(threading.current_thread().name)
        loop.call_soon_threadsafe(done.set)

    await manager.create(
        StreamConfig("s", batch_timeout_ms=0), processors=[FunctionProcessor("b", blocking)]
    )
    await store.put("k", b"v")
    await asyncio.wait_for(done.wait(), 10)
    assert threading.main_thread().name not in threads


async def test_slow_consumer_overflows_to_the_log_and_rejoins(
    manager: ChangeStreamManager, store: Store
) -> None:
    recorder = Recorder()
    recorder.gate.clear()
    stream = await manager.create(
        StreamConfig("s", buffer_size=50, batch_size=10, batch_timeout_ms=0), processors=[recorder]
    )
    await store.put("first", b"v")
    await asyncio.sleep(0.05)  # the processor now holds batch 1 and is stalled
    loop = asyncio.get_running_loop()
    started = loop.time()
    for chunk in range(20):  # writers are never held back by the stalled consumer
        await store.batch([Put(f"k{chunk}/{i}", b"v") for i in range(50)])
    assert loop.time() - started < 5
    consumer = stream.consumers["recorder"]
    assert consumer.cursor.overflows >= 1
    assert consumer.cursor.pending <= 50  # memory stays bounded
    assert stream.stats()["consumers"][0]["state"] == "catching_up"
    recorder.gate.set()
    await recorder.wait_for(lambda r: len(r.events) == 1001)
    assert recorder.seqs == list(range(1, 1002))  # no gap, no duplicate
    await store.put("live-again", b"v")
    await recorder.wait_for(lambda r: len(r.events) == 1002)
    assert consumer.cursor.state.value == "live"


async def test_disconnect_policy_closes_instead_of_lagging(
    manager: ChangeStreamManager, store: Store
) -> None:
    from changestream import CursorClosed, EventFilter, OverflowPolicy

    async with manager.subscribe(
        EventFilter(), since=0, buffer_size=5, on_overflow=OverflowPolicy.DISCONNECT
    ) as cursor:
        await store.batch([Put(f"k{i}", b"v") for i in range(3)])
        first = await cursor.next_batch()
        assert [e.seq for e in first.events] == [1, 2, 3]
        await store.batch([Put(f"x{i}", b"v") for i in range(10)])
        await asyncio.sleep(0.01)
        with pytest.raises(CursorClosed) as info:
            await cursor.next_batch()
        assert info.value.reason == "overflow" and "after seq 3" in info.value.message
