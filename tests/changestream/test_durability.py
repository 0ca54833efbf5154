"""Durable checkpoints, restarts, live reconfiguration, compaction, persisted definitions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from changestream import (
    ChangeStreamManager,
    ConsumerBusy,
    InvalidAck,
    StreamConfig,
    StreamExists,
    UnknownStream,
)
from kvdb import Put, RetentionPolicy, Store, StoreConfig
from tests.changestream.conftest import Recorder
from tests.conftest import eventually


async def wait_checkpoint(
    manager: ChangeStreamManager, stream: str, consumer: str, seq: int
) -> None:
    """Wait until ``consumer`` has processed through ``seq`` and, for a persistent consumer,
    until that checkpoint is committed (the in-memory one moves first)."""
    reader = manager.get(stream).consumers[consumer]

    def reached() -> bool:
        if reader.checkpoint < seq:
            return False
        if not reader.persist:
            return True
        durable = manager.store.get_checkpoint(reader.key)
        return durable is not None and durable.seq >= seq

    await eventually(reached)


async def test_durable_checkpoint_resumes_after_restart(store_config: StoreConfig) -> None:
    config = StreamConfig(
        "orders",
        key_patterns=("orders/.*",),
        enable_persistence=True,
        start_from="earliest",
        batch_timeout_ms=0,
    )
    with Store(store_config) as store:
        manager = ChangeStreamManager(store)
        await manager.start()
        first = Recorder("billing")
        await manager.create(config, processors=[first])
        await store.batch([Put(f"orders/{i}", b"v") for i in range(30)])
        await wait_checkpoint(manager, "orders", "billing", 30)
        await manager.stop()
        await store.batch([Put(f"orders/{i}", b"v") for i in range(30, 40)])  # while it is away

    with Store(store_config) as store:
        manager = ChangeStreamManager(store)
        await manager.start()  # the definition was persisted
        second = Recorder("billing")
        await manager.get("orders").add_processor(second)
        await second.wait_for(lambda r: len(r.events) == 10)
        assert second.seqs == list(range(31, 41))  # exactly after the checkpoint
        assert first.seqs == list(range(1, 31))
        await manager.stop()


async def test_without_persistence_a_restart_starts_over(store_config: StoreConfig) -> None:
    config = StreamConfig("s", start_from="latest", batch_timeout_ms=0)
    with Store(store_config) as store:
        manager = ChangeStreamManager(store)
        await manager.start()
        await manager.create(config, processors=[Recorder()])
        await store.put("a", b"1")
        await manager.stop()
    with Store(store_config) as store:
        manager = ChangeStreamManager(store)
        await manager.start()
        recorder = Recorder()
        await manager.get("s").add_processor(recorder)
        await store.put("b", b"2")
        await recorder.wait_for(lambda r: len(r.events) == 1)
        assert recorder.events[0].key == "b"
        assert store.list_checkpoints() == []
        await manager.stop()


async def test_live_reconfiguration_loses_nothing(
    manager: ChangeStreamManager, store: Store
) -> None:
    recorder = Recorder()
    await manager.create(
        StreamConfig("s", key_patterns=("a/.*",), batch_size=5, batch_timeout_ms=0),
        processors=[recorder],
    )
    stop = asyncio.Event()

    async def writer() -> None:
        i = 0
        while not stop.is_set():
            await store.batch([Put(f"a/{i}", b"v"), Put(f"b/{i}", b"v")])
            i += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    await recorder.wait_for(lambda r: len(r.events) >= 20)
    await manager.update(
        StreamConfig("s", key_patterns=("b/.*",), batch_size=7, batch_timeout_ms=0)
    )
    await asyncio.sleep(0.05)
    stop.set()
    await task
    last_seq = store.last_seq
    await recorder.wait_for(lambda r: bool(r.events) and r.seqs[-1] >= last_seq)
    seqs = recorder.seqs
    assert seqs == sorted(set(seqs))  # ordered, no duplicates
    switch = next(i for i, e in enumerate(recorder.events) if e.key.startswith("b/"))
    assert all(e.key.startswith("a/") for e in recorder.events[:switch])
    assert all(e.key.startswith("b/") for e in recorder.events[switch:])
    # every b/ event after the switch point arrived: nothing fell between the two configs
    expected = [
        e.seq for e in store.read_changes(seqs[switch] - 1, limit=100_000) if e.key.startswith("b/")
    ]
    assert seqs[switch:] == expected
    assert manager.get("s").config.batch_size == 7


async def test_hard_cap_compaction_reports_compacted(tmp_path: Path) -> None:
    retention = RetentionPolicy(max_events=10, hard_max_events=20, compaction_interval_ms=3_600_000)
    with Store(StoreConfig(data_dir=tmp_path / "d", retention=retention)) as store:
        manager = ChangeStreamManager(store)
        await manager.start()
        stuck = Recorder("stuck")
        stuck.gate.clear()
        stream = await manager.create(
            StreamConfig(
                "s", enable_persistence=True, batch_size=1, buffer_size=5, batch_timeout_ms=0
            ),
            processors=[stuck],
        )
        await store.put("first", b"v")
        await asyncio.sleep(0.05)
        await store.batch([Put(f"k{i}", b"v") for i in range(60)])
        await asyncio.to_thread(store.compact_sync)
        assert store.oldest_seq() == 42  # the hard cap passed the stuck checkpoint
        stuck.gate.set()
        await eventually(lambda: stream.stats()["consumers"][0]["state"] == "compacted")
        stats = stream.stats()["consumers"][0]
        assert stats["oldest_seq"] == 42 and stats["checkpoint"] == 1
        assert stuck.seqs == [1]  # it never silently skipped to seq 42
        await manager.stop()


async def test_soft_retention_waits_for_a_durable_checkpoint(tmp_path: Path) -> None:
    retention = RetentionPolicy(
        max_events=10, hard_max_events=None, compaction_interval_ms=3_600_000
    )
    with Store(StoreConfig(data_dir=tmp_path / "d", retention=retention)) as store:
        manager = ChangeStreamManager(store)
        await manager.start()
        slow = Recorder("slow")
        slow.gate.clear()
        await manager.create(
            StreamConfig("s", enable_persistence=True, start_from="earliest"), processors=[slow]
        )
        await store.batch([Put(f"k{i}", b"v") for i in range(50)])
        await asyncio.to_thread(store.compact_sync)
        assert store.oldest_seq() == 1
        slow.gate.set()
        await wait_checkpoint(manager, "s", "slow", 50)
        await asyncio.to_thread(store.compact_sync)
        assert store.oldest_seq() == 41
        await manager.stop()


async def test_remote_consumer_acks(manager: ChangeStreamManager, store: Store) -> None:
    stream = await manager.create(StreamConfig("s", enable_persistence=True, batch_timeout_ms=0))
    consumer = await stream.attach("ws")
    with pytest.raises(ConsumerBusy):
        await stream.attach("ws")
    await store.batch([Put(f"k{i}", b"v") for i in range(5)])
    batch = await consumer.cursor.next_batch()
    assert [e.seq for e in batch.events] == [1, 2, 3, 4, 5]
    with pytest.raises(InvalidAck):
        await consumer.ack(6)
    await consumer.ack(3)
    stored = store.get_checkpoint("stream/s/ws")
    assert stored is not None and stored.seq == 3
    stream.detach("ws")
    again = await stream.attach("ws")
    assert [e.seq for e in (await again.cursor.next_batch()).events] == [4, 5]


async def test_crud_and_persisted_definitions(manager: ChangeStreamManager, store: Store) -> None:
    await manager.create(StreamConfig("a", enable_persistence=True))
    with pytest.raises(StreamExists):
        await manager.create(StreamConfig("a"))
    with pytest.raises(UnknownStream):
        manager.get("nope")
    await manager.get("a").add_processor(Recorder())
    assert [c.name for c in store.list_checkpoints()] == ["stream/a/recorder"]
    await manager.upsert(StreamConfig("a", key_patterns=("x.*",), enable_persistence=True))
    assert manager.get("a").config.key_patterns == ("x.*",)
    assert [name for name, _ in store.list_system_records("streams/")] == ["streams/a"]
    await manager.remove("a")
    assert manager.list() == [] and store.list_checkpoints() == []
    assert store.list_system_records("streams/") == []


async def test_stats(manager: ChangeStreamManager, store: Store) -> None:
    recorder = Recorder()
    recorder.gate.clear()
    stream = await manager.create(
        StreamConfig("s", batch_size=2, buffer_size=100, batch_timeout_ms=0), processors=[recorder]
    )
    await store.batch([Put(f"k{i}", b"v") for i in range(7)])
    await asyncio.sleep(0.05)
    stats = stream.stats()
    consumer = stats["consumers"][0]
    assert consumer["state"] == "live" and consumer["checkpoint"] == 0
    assert consumer["lag_events"] == 7 and consumer["lag_ms"] >= 0
    assert consumer["pending"] == 5 and consumer["buffer_fill"] == 0.05
    recorder.gate.set()
    await wait_checkpoint(manager, "s", "recorder", 7)
    stats = stream.stats()
    assert stats["delivered"] == 7 and stats["batches"] == 4 and stats["lag_events"] == 0
