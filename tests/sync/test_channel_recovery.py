"""``TargetChannel`` bringing a target back, in process against ``FakeSyncTarget``: a wiped
target noticed while idle, a batch whose log was compacted meanwhile, a snapshot resumed
after a failed page (the multi-process versions are in tests/integration/)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from changestream import Batch
from kvdb import ApplyResult, RemoteBatch, Store, StoreConfig
from kvdb.config import RetentionPolicy
from sync import SyncConfig, TargetChannel, TargetConfig, TargetUnavailable
from sync.channel import SNAPSHOT_WINDOW
from sync.protocol import Hello, Mode, Welcome
from sync.testing import FakeSyncTarget


class InstantClock:
    def now_ms(self) -> float:
        return asyncio.get_running_loop().time() * 1000

    async def wait(self, event: asyncio.Event, timeout_ms: float | None) -> bool:
        return event.is_set()

    async def sleep(self, ms: float) -> None:
        await asyncio.sleep(0)


@dataclass
class WrappedTarget:
    """A ``FakeSyncTarget`` behind a ``SyncTarget`` whose ``apply`` a test overrides."""

    inner: FakeSyncTarget

    @property
    def node_id(self) -> str:
        return self.inner.node_id

    @property
    def endpoint(self) -> str | None:
        return None

    async def handshake(self, hello: Hello) -> Welcome:
        return await self.inner.handshake(hello)

    async def apply(self, batch: RemoteBatch, mode: Mode = "log") -> ApplyResult:
        return await self.inner.apply(batch, mode)

    async def check_health(self) -> bool:
        return True

    async def close(self) -> None:
        return None


@dataclass
class FailingPage(WrappedTarget):
    """A ``FakeSyncTarget`` whose ``fail_on``-th snapshot page fails once, after ``meanwhile``
    ran (as if writes happened while the snapshot was under way)."""

    fail_on: int = 0
    meanwhile: object = None
    pages: int = 0
    ends: list[int] = field(default_factory=list)

    async def apply(self, batch: RemoteBatch, mode: Mode = "log") -> ApplyResult:
        if mode == "snapshot":
            self.pages += 1
            if self.pages == self.fail_on:
                if callable(self.meanwhile):
                    self.meanwhile()
                raise TargetUnavailable("the link dropped (injected)")
        if mode == "snapshot_end":
            self.ends.append(batch.last_seq)
        return await self.inner.apply(batch, mode)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    retention = RetentionPolicy(max_events=None, hard_max_events=5, compaction_chunk=100)
    config = StoreConfig(data_dir=tmp_path / "a", node_id="a", retention=retention)
    with Store(config) as opened:
        yield opened


def channel(store: Store, target: object, batch_size: int = 1000) -> TargetChannel:
    config = SyncConfig(
        "s", targets=(TargetConfig("b", ("http://b.test",)),), batch_size=batch_size
    )
    return TargetChannel(config, target, store, InstantClock())  # type: ignore[arg-type]


async def deliver_everything(sender: TargetChannel, store: Store) -> None:
    events = store.read_changes(sender.delivered_through, limit=10_000)
    await sender.process_batch(Batch(events, store.last_seq, True))


async def test_a_wiped_target_is_refilled_by_verify_while_the_sender_is_idle(
    store: Store,
) -> None:
    fake = FakeSyncTarget("b")
    sender = channel(store, fake)
    for i in range(5):
        store.put_sync(f"k{i}", b"v")
    store.delete_sync("k0")
    await deliver_everything(sender, store)
    assert sorted(fake.live_values()) == ["k1", "k2", "k3", "k4"]
    await sender.verify()  # nothing lost: a handshake and no more
    assert sender.stats["snapshots"] == 0
    fake.wipe()
    await sender.verify()
    assert sender.stats["snapshots"] == 1 and sender.state.value == "live"
    assert sorted(fake.live_values()) == ["k1", "k2", "k3", "k4"]
    assert fake.values["k0"].deleted  # the tombstone went too
    assert fake.checkpoints["a"][1] == store.last_seq


async def test_a_wipe_is_noticed_by_a_new_channel_from_the_stored_epoch(store: Store) -> None:
    fake = FakeSyncTarget("b")
    store.put_sync("k", b"v")
    await deliver_everything(channel(store, fake), store)
    fake.wipe()
    restarted = channel(store, fake)  # as after a restart of this node
    restarted.delivered_through = 0  # (its stream checkpoint is kept by the stream)
    store.put_sync("k2", b"v")
    await deliver_everything(restarted, store)
    assert restarted.stats["snapshots"] == 1
    assert sorted(fake.live_values()) == ["k", "k2"]


async def test_a_batch_whose_log_was_compacted_meanwhile_is_sent_as_a_snapshot(
    store: Store,
) -> None:
    fake = FakeSyncTarget("b")
    sender = channel(store, fake)
    store.put_sync("first", b"1")
    held = store.read_changes(0)  # a batch the stream holds while the target is away
    for i in range(20):
        store.put_sync(f"later{i}", b"v")
    store.compact_sync()
    assert store.oldest_seq() > 2
    await sender.process_batch(Batch(held, held[-1].seq, False))
    await sender.settle()  # more was pending, so the batch went on in the background
    assert sender.stats["snapshots"] == 1
    assert len(fake.live_values()) == 21
    assert sender.remote == store.last_seq


async def test_a_snapshot_resumed_after_a_failed_page_keeps_the_seq_it_started_at(
    store: Store,
) -> None:
    for i in range(6):
        store.put_sync(f"k{i}", b"v")
    started_at = store.last_seq
    target = FailingPage(FakeSyncTarget("b"), fail_on=2)
    target.meanwhile = lambda: store.put_sync("k0", b"written during the snapshot")
    sender = channel(store, target, batch_size=2)
    store.compact_sync()  # the log no longer holds seq 1: a snapshot it is
    retained = store.read_changes(store.oldest_seq() - 1)
    await sender.process_batch(Batch(retained, store.last_seq, True))
    # The pages sent before the failure were of the state at started_at, so the snapshot
    # must end there; the write made meanwhile comes after it, from the log.
    assert target.ends == [started_at]
    assert sender.stats["snapshots"] == 1
    await sender.process_batch(Batch(store.read_changes(started_at), store.last_seq, True))
    assert target.inner.live_values()["k0"] == b"written during the snapshot"


@dataclass
class SlowFailingPage(WrappedTarget):
    """A ``FakeSyncTarget`` whose ``fail_on``-th snapshot page fails once, but only after the
    pages sent with it have been applied: the window's later pages land before its head fails."""

    fail_on: int = 0
    pages: int = 0
    in_flight: int = 0
    most_in_flight: int = 0
    applied: list[list[str]] = field(default_factory=list)

    async def apply(self, batch: RemoteBatch, mode: Mode = "log") -> ApplyResult:
        if mode != "snapshot":
            return await self.inner.apply(batch, mode)
        self.pages += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.pages == self.fail_on:
                for _ in range(20):  # let the pages sent after this one through first
                    await asyncio.sleep(0)
                raise TargetUnavailable("the link dropped (injected)")
            result = await self.inner.apply(batch, mode)
            self.applied.append([item.key for item in batch.items])
            return result
        finally:
            self.in_flight -= 1


async def test_snapshot_pages_go_several_at_once_and_a_failed_one_is_sent_again(
    store: Store,
) -> None:
    keys = [f"k{i:02}" for i in range(12)]
    for key in keys:
        store.put_sync(key, b"v")
    target = SlowFailingPage(FakeSyncTarget("b"), fail_on=2)
    sender = channel(store, target, batch_size=2)
    store.compact_sync()  # the log no longer holds seq 1: a snapshot it is
    retained = store.read_changes(store.oldest_seq() - 1)
    await sender.process_batch(Batch(retained, store.last_seq, True))
    assert 2 <= target.most_in_flight <= SNAPSHOT_WINDOW
    assert sorted(target.inner.live_values()) == keys
    # The failed page (k02, k03) came again, after pages sent behind it had landed; the
    # snapshot resumed from the last page applied in order, never past the failed one.
    first_failed = target.applied.index(["k02", "k03"])
    assert ["k04", "k05"] in target.applied[:first_failed]
    assert sender.stats["snapshots"] == 1 and sender.remote == store.last_seq
