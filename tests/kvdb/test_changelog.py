"""Change-log reads, retention by count and age, pinning checkpoints, the hard cap and
tombstone collection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kvdb import Compacted, Put, RetentionPolicy, Store, StoreConfig
from tests.conftest import StepClock

HOUR = 3_600_000


def make_store(tmp_path: Path, clock: StepClock, **retention: int | None) -> Store:
    policy = RetentionPolicy(
        **{"max_events": None, "max_age_ms": None, "hard_max_events": None, **retention},
        compaction_interval_ms=3_600_000,  # tests compact by hand
        compaction_chunk=7,
    )
    config = StoreConfig(
        data_dir=tmp_path / "d", node_id="n", retention=policy, tombstone_grace_ms=HOUR
    )
    return Store(config, clock=clock)


def fill(store: Store, n: int) -> None:
    store.batch_sync([Put(f"k{i}", b"v") for i in range(n)])


def test_read_after_seq_with_limit(store: Store) -> None:
    fill(store, 10)
    assert [e.seq for e in store.read_changes(3, limit=4)] == [4, 5, 6, 7]
    assert store.read_changes(10) == []
    assert store.read_changes(99) == []
    with pytest.raises(ValueError):
        store.read_changes(-1)


def test_retention_by_count(tmp_path: Path, clock: StepClock) -> None:
    with make_store(tmp_path, clock, max_events=10) as store:
        fill(store, 25)
        assert store.compact_sync() == 15  # removed in chunks of 7
        assert store.oldest_seq() == 16
        assert [e.seq for e in store.read_changes(15)][:2] == [16, 17]
        with pytest.raises(Compacted) as info:
            store.read_changes(14)
        assert (info.value.since, info.value.oldest_seq) == (14, 16)
        assert "since=15" in info.value.message


def test_retention_by_age(tmp_path: Path, clock: StepClock) -> None:
    with make_store(tmp_path, clock, max_age_ms=HOUR) as store:
        fill(store, 5)
        clock.advance(HOUR // 2)
        fill(store, 5)
        clock.advance(HOUR // 2 + 1)
        assert store.compact_sync() == 5
        assert store.oldest_seq() == 6


def test_pinning_checkpoint_holds_back_soft_retention(tmp_path: Path, clock: StepClock) -> None:
    with make_store(tmp_path, clock, max_events=5, hard_max_events=20) as store:
        fill(store, 15)
        asyncio.run(store.set_checkpoint("slow-consumer", 3))
        asyncio.run(store.set_checkpoint("observer", 1, pin=False))
        store.compact_sync()
        assert store.oldest_seq() == 4  # the consumer still needs seq 4 onwards
        asyncio.run(store.set_checkpoint("slow-consumer", 12))
        store.compact_sync()
        assert store.oldest_seq() == 11  # max_events=5 applies again


def test_hard_cap_compacts_past_a_checkpoint(tmp_path: Path, clock: StepClock) -> None:
    with make_store(tmp_path, clock, max_events=5, hard_max_events=10) as store:
        fill(store, 30)
        asyncio.run(store.set_checkpoint("gone-forever", 2))
        store.compact_sync()
        assert store.oldest_seq() == 21
        checkpoint = store.get_checkpoint("gone-forever")
        assert checkpoint is not None
        with pytest.raises(Compacted) as info:
            store.read_changes(checkpoint.seq)
        assert info.value.oldest_seq == 21


def test_seq_stays_gapless_when_the_whole_log_is_compacted(
    tmp_path: Path, clock: StepClock
) -> None:
    with make_store(tmp_path, clock, max_events=0) as store:
        fill(store, 4)
        store.compact_sync()
        assert store.oldest_seq() == 5
        assert store.read_changes(4) == []
        with pytest.raises(Compacted):
            store.read_changes(3)
    with make_store(tmp_path, clock, max_events=0) as store:
        assert store.put_sync("x", b"1").seq == 5


def test_tombstones_are_collected_after_the_grace_period(tmp_path: Path, clock: StepClock) -> None:
    with make_store(tmp_path, clock) as store:
        fill(store, 3)
        store.delete_sync("k0")
        store.delete_sync("k1")
        clock.advance(HOUR // 2)
        store.delete_sync("k2")
        store.put_sync("k1", b"again")  # re-created: its old tombstone must not delete it
        assert store.stats().records == 3
        clock.advance(HOUR // 2 + 1)
        store.compact_sync()
        assert store.stats().records == 2  # k0's tombstone gone; k1 live; k2 within grace
        entry = store.get("k1")
        assert entry is not None and entry.value == b"again"
        clock.advance(HOUR)
        store.compact_sync()
        assert store.stats().records == 1
