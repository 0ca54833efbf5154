"""``TargetChannel``: what one target gets, and how failures, gaps, wipes and compaction are
handled; driven batch by batch against a real store and the fake target."""

from __future__ import annotations

import asyncio
import itertools

from changestream import Batch
from kvdb import Delete, Put, RemoteBatch, RemoteItem, Store
from sync import Forward, SyncConfig, TargetChannel, TargetConfig, TargetState
from sync.testing import FakeSyncTarget
from tests.conftest import eventually


class RecordingClock:
    """Real time for timestamps; sleeps are recorded and return at once."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def now_ms(self) -> float:
        import time

        return time.time() * 1000

    async def sleep(self, ms: float) -> None:
        self.sleeps.append(ms)
        await asyncio.sleep(0)

    async def wait(self, event: asyncio.Event, timeout_ms: float | None) -> bool:
        return event.is_set()


_names = itertools.count()


def channel(store: Store, fake: FakeSyncTarget, **options: object) -> TargetChannel:
    """A channel of a processor of its own: two fakes of one name are two different nodes
    (a processor remembers each target's epoch, and would take the second for the first
    wiped)."""
    config = SyncConfig(
        f"s{next(_names)}",
        targets=(TargetConfig(fake.node_id, ("http://unused.test",)),),
        **options,  # type: ignore[arg-type]
    )
    clock = RecordingClock()
    return TargetChannel(config, fake, store, clock, rng=lambda low, high: high)  # type: ignore[arg-type]


def everything(store: Store, since: int = 0) -> Batch:
    events = store.read_changes(since, limit=10_000)
    return Batch(events, events[-1].seq, True)


async def test_a_batch_arrives_with_versions_and_moves_the_checkpoint(store: Store) -> None:
    fake = FakeSyncTarget("b")
    ch = channel(store, fake)
    await store.put("k", b"v", content_type="text/plain")
    await store.delete("k")
    await store.put("j", b"w")
    await ch.process_batch(everything(store))
    assert fake.live_values() == {"j": b"w"} and fake.values["k"].deleted
    assert fake.checkpoints["a"] == (store.epoch, 3)
    assert ch.state is TargetState.LIVE and ch.status()["lag_events"] == 0
    assert ch.status()["sent"] == 3


async def test_what_travels_own_or_all_but_never_back_nor_reserved(store: Store) -> None:
    from kvdb.hlc import wall_clock_ms

    hlc = wall_clock_ms() << 16
    remote = [
        RemoteItem(1, "from-b", False, b"1", None, hlc, "b", {"b": hlc}, 1),
        RemoteItem(2, "from-c", False, b"2", None, hlc + 1, "c", {"c": hlc + 1}, 2),
    ]
    await store.put("both", b"mine")  # and c wrote it concurrently: a conflict record
    remote.append(RemoteItem(3, "both", False, b"c", None, hlc + 2, "c", {"c": hlc + 2}, 3))
    await store.replica.apply(RemoteBatch("c", "e", 0, 3, remote), max_clock_skew_ms=5000)
    assert any(e.key.startswith("_sync/conflicts/") for e in store.read_changes(0))
    await store.put("mine", b"3")
    own, relay = FakeSyncTarget("b"), FakeSyncTarget("b")
    await channel(store, own).process_batch(everything(store))
    await channel(store, relay, forward=Forward.ALL).process_batch(everything(store))
    # a mesh node sends only what it originated; reserved keys (the conflict record) never
    assert set(own.values) == {"both", "mine"}
    assert {item.origin for item in own.values.values()} == {"a"}
    # relaying: everything, but not b's own write back to b
    assert set(relay.values) == {"from-c", "both", "mine"}
    to_c = FakeSyncTarget("c")
    await channel(store, to_c, forward=Forward.ALL).process_batch(everything(store))
    assert set(to_c.values) == {"both", "mine"}  # nor what came from c (b's came through c)
    assert {item.origin for item in to_c.values.values()} == {"a"}


async def test_source_patterns_select_keys(store: Store) -> None:
    fake = FakeSyncTarget("b")
    await store.batch([Put("orders/1", b"1"), Put("users/1", b"2")])
    await channel(store, fake, source_patterns=("orders/.*",)).process_batch(everything(store))
    assert set(fake.values) == {"orders/1"}


async def test_a_transaction_cut_by_the_stream_is_sent_whole(store: Store) -> None:
    fake = FakeSyncTarget("b")
    await store.batch([Put(f"k{i}", b"v") for i in range(10)])
    events = store.read_changes(0)
    ch = channel(store, fake, batch_size=4)
    await ch.process_batch(Batch(events[:4], events[3].seq, False))
    await ch.settle()  # more was pending, so the batch went on in the background
    assert len(fake.batches) == 1 and len(fake.batches[0].items) == 10  # one txn, one batch
    await ch.process_batch(Batch(events[4:], events[-1].seq, True))
    assert len(fake.batches) == 1  # the rest was already there


async def test_batches_end_between_transactions(store: Store) -> None:
    fake = FakeSyncTarget("b")
    for n in range(4):
        await store.batch([Put(f"t{n}-{i}", b"v") for i in range(3)])
    await channel(store, fake, batch_size=5).process_batch(everything(store))
    sizes = [len(b.items) for b in fake.batches]
    assert sizes == [3, 3, 3, 3] and [b.last_seq for b in fake.batches] == [3, 6, 9, 12]


async def test_a_stretch_of_skipped_events_moves_the_peer_checkpoint(store: Store) -> None:
    fake = FakeSyncTarget("b")
    await store.put("users/1", b"1")
    await store.put("users/2", b"2")
    ch = channel(store, fake, source_patterns=("orders/.*",))
    await ch.process_batch(everything(store))
    assert fake.checkpoints["a"][1] == 2 and not fake.values


async def test_failures_are_retried_with_growing_capped_delays(store: Store) -> None:
    fake = FakeSyncTarget("b")
    fake.faults.unavailable = 6
    ch = channel(store, fake, retry_delay_ms=100, max_retry_delay_ms=1000)
    await store.put("k", b"v")
    await ch.process_batch(everything(store))
    assert ch.clock.sleeps == [100, 200, 400, 800, 1000, 1000]  # type: ignore[attr-defined]
    assert fake.live_values() == {"k": b"v"} and ch.stats["retries"] == 6
    assert ch.state is TargetState.LIVE and ch.status()["retry_delay_ceiling_ms"] == 0


async def test_lost_replies_do_not_double_anything(store: Store) -> None:
    fake = FakeSyncTarget("b")
    fake.faults.lose_replies = 3
    ch = channel(store, fake)
    for i in range(3):
        await store.put(f"k{i}", b"v")
    await ch.process_batch(everything(store))
    assert len(fake.batches) == 1 and fake.checkpoints["a"][1] == 3
    assert ch.stats["applied"] == 0 and ch.stats["skipped"] == 3  # the retry was a duplicate


async def test_a_refusal_shows_in_the_status_and_is_retried(store: Store) -> None:
    fake = FakeSyncTarget("b")
    fake.faults.refuse = "version 1.b is 600000 ms ahead"
    ch = channel(store, fake)
    await store.put("k", b"v")
    task = asyncio.create_task(ch.process_batch(everything(store)))
    await eventually(lambda: ch.state is TargetState.UNHEALTHY)
    assert "ahead" in ch.status()["last_error"]
    fake.faults.refuse = None
    await asyncio.wait_for(task, 5)
    assert fake.live_values() == {"k": b"v"}


async def test_a_wiped_target_is_resent_the_log(store: Store) -> None:
    fake = FakeSyncTarget("b")
    ch = channel(store, fake)
    await store.put("k1", b"v")
    await ch.process_batch(everything(store))
    fake.wipe()
    await store.put("k2", b"v")
    await ch.process_batch(everything(store, since=1))  # the stream only has k2 for us
    assert fake.live_values() == {"k1": b"v", "k2": b"v"}


async def test_a_target_behind_the_compacted_log_gets_a_snapshot(store: Store) -> None:
    fake = FakeSyncTarget("b")
    ch = channel(store, fake)
    await store.batch([Put(f"k{i}", b"v") for i in range(10)])
    await store.batch([Delete("k3")])
    store.compact_sync()  # keeps 5 events: the target's position is gone from the log
    assert store.oldest_seq() > 1
    await ch.process_batch(everything(store, since=store.oldest_seq() - 1))
    assert ch.stats["snapshots"] == 1
    assert set(fake.live_values()) == {f"k{i}" for i in range(10) if i != 3}
    assert fake.values["k3"].deleted  # the tombstone travels too
    assert fake.checkpoints["a"][1] == store.last_seq
