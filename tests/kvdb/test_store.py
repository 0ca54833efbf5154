"""Store: reads, writes, batches, conditions, events and listeners."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from kvdb import (
    ChangeEvent,
    DataDirLocked,
    Delete,
    Durability,
    EventType,
    PreconditionFailed,
    Put,
    Store,
    StoreClosed,
    StoreConfig,
)


def test_put_get_delete_and_events(store: Store) -> None:
    first = store.put_sync("a", b"1", content_type="text/plain")
    second = store.put_sync("a", b"2")
    assert (first.seq, second.seq) == (1, 2)
    assert second.version > first.version

    entry = store.get("a")
    assert entry is not None
    assert (entry.value, entry.version, entry.origin) == (b"2", second.version, "test-node")
    assert entry.content_type is None

    deleted = store.delete_sync("a")
    assert deleted.seq == 3
    assert store.get("a") is None
    assert store.get("a", default=entry) is entry
    assert store.delete_sync("a").seq is None  # absent: nothing changes, no event

    events = store.read_changes(0)
    assert [(e.seq, e.type, e.old_value, e.new_value) for e in events] == [
        (1, EventType.INSERT, None, b"1"),
        (2, EventType.UPDATE, b"1", b"2"),
        (3, EventType.DELETE, b"2", None),
    ]
    assert all(e.origin == "test-node" and e.txn == e.seq for e in events)
    assert events[2].version == deleted.version
    assert events[0].ts == events[0].hlc >> 16


def test_put_after_delete_is_an_insert(store: Store) -> None:
    store.put_sync("k", b"v1")
    store.delete_sync("k")
    store.put_sync("k", b"v2")
    assert [e.type for e in store.read_changes(0)] == [
        EventType.INSERT,
        EventType.DELETE,
        EventType.INSERT,
    ]


def test_batch_is_atomic_and_shares_a_txn(store: Store) -> None:
    store.put_sync("x", b"old")
    result = store.batch_sync([Put("x", b"new"), Put("y", b"1"), Delete("x"), Delete("nope")])
    assert result.txn == 2
    assert [r.seq for r in result.results] == [2, 3, 4, None]
    assert result.last_seq == 4
    events = store.read_changes(1)
    assert {e.txn for e in events} == {2}
    assert [(e.key, e.type) for e in events] == [
        ("x", EventType.UPDATE),
        ("y", EventType.INSERT),
        ("x", EventType.DELETE),
    ]


def test_failed_batch_writes_nothing(store: Store) -> None:
    v = store.put_sync("x", b"1").version
    with pytest.raises(PreconditionFailed) as info:
        store.batch_sync([Put("a", b"1"), Put("x", b"2", if_version=v._replace(hlc=v.hlc + 1))])
    assert info.value.current_version == v
    assert store.get("a") is None
    assert store.last_seq == 1
    assert store.batch_sync([Delete("x", if_version=v)]).txn == 2


async def test_failed_request_does_not_fail_its_commit_group(store: Store) -> None:
    await store.put("c", b"0")

    async def conditional() -> None:
        await store.put("c", b"x", if_absent=True)

    outcomes = await asyncio.gather(
        *(store.put(f"k{i}", b"v") for i in range(50)), conditional(), return_exceptions=True
    )
    assert sum(isinstance(o, PreconditionFailed) for o in outcomes) == 1
    assert store.last_seq == 51
    assert [e.seq for e in store.read_changes(0, limit=100)] == list(range(1, 52))


def test_conditional_writes(store: Store) -> None:
    created = store.put_sync("k", b"1", if_absent=True)
    with pytest.raises(PreconditionFailed, match="already exists"):
        store.put_sync("k", b"2", if_absent=True)
    with pytest.raises(PreconditionFailed, match="not at version"):
        store.put_sync("k", b"2", if_version=created.version._replace(origin="other"))
    updated = store.put_sync("k", b"2", if_version=created.version)
    with pytest.raises(PreconditionFailed):
        store.delete_sync("k", if_version=created.version)
    store.delete_sync("k", if_version=updated.version)
    with pytest.raises(PreconditionFailed, match="absent"):
        store.put_sync("k", b"3", if_version=updated.version)
    store.put_sync("k", b"3", if_absent=True)  # a deleted key counts as absent


async def test_concurrent_writers_get_a_gapless_log(store: Store) -> None:
    async def writer(w: int) -> list[int]:
        return [(await store.put(f"w{w}/{i}", b"x")).seq or 0 for i in range(100)]

    seqs = [s for chunk in await asyncio.gather(*(writer(w) for w in range(32))) for s in chunk]
    assert sorted(seqs) == list(range(1, 3201))
    log = store.read_changes(0, limit=10_000)
    assert [e.seq for e in log] == list(range(1, 3201))
    hlcs = [e.hlc for e in log]
    assert hlcs == sorted(hlcs) and len(set(hlcs)) == len(hlcs)
    assert store.stats().writer.commits < 3200  # group commit coalesced writers


async def test_versions_increase_with_seq_when_groups_mix_puts_batches_and_deletes(
    store: Store,
) -> None:
    async def single(w: int) -> None:
        for i in range(50):
            await store.put(f"s{w}/{i}", b"x")
            if i % 5 == 0:
                await store.delete(f"s{w}/{i}")

    async def batches(w: int) -> None:
        for i in range(20):
            await store.batch([Put(f"b{w}/{i}/{j}", b"y") for j in range(i % 7 + 1)])

    # Interleaved, so that commit groups hold single writes after batches.
    await asyncio.gather(
        *(c for w in range(4) for c in (single(2 * w), batches(w), single(2 * w + 1)))
    )
    hlcs = [event.hlc for event in store.read_changes(0, limit=10_000)]
    assert len(hlcs) == 8 * 60 + 4 * sum(i % 7 + 1 for i in range(20))
    assert all(a < b for a, b in itertools.pairwise(hlcs))  # time ranges can bisect the log


def test_threads_and_loops_share_the_writer(store: Store) -> None:
    def thread_writer(n: int) -> None:
        for i in range(200):
            store.put_sync(f"t{n}/{i}", b"v")

    threads = [threading.Thread(target=thread_writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()

    async def loop_writer() -> None:
        await asyncio.gather(*(store.put(f"l/{i}", b"v") for i in range(400)))

    asyncio.run(loop_writer())
    for t in threads:
        t.join()
    assert store.last_seq == 1200
    assert len(store.read_changes(0, limit=2000)) == 1200


def test_commit_listener_sees_every_commit_in_order(store: Store) -> None:
    seen: list[ChangeEvent] = []
    store.add_commit_listener(lambda events: seen.extend(events))

    def broken(events: Sequence[ChangeEvent]) -> None:
        raise RuntimeError("listener bug")

    store.add_commit_listener(broken)  # must not break the writer or the other listener
    store.put_sync("a", b"1")
    store.batch_sync([Put("b", b"2"), Put("c", b"3")])
    store.delete_sync("a")
    assert [e.seq for e in seen] == [1, 2, 3, 4]
    assert seen == store.read_changes(0)
    store.remove_commit_listener(broken)
    store.put_sync("d", b"4")
    assert seen[-1].key == "d"


async def test_cancelled_waiter_does_not_undo_the_write(store: Store) -> None:
    task = asyncio.ensure_future(store.put("k", b"v"))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await store.put("after", b"v")  # the writer is still healthy
    assert store.get("after") is not None


def test_reopen_continues_seq_and_keeps_data(store_config: StoreConfig) -> None:
    with Store(store_config) as first:
        first.put_sync("a", b"1")
        first.put_sync("b", b"2")
        last_version = first.put_sync("a", b"3").version
    with Store(store_config) as second:
        assert second.last_seq == 3
        assert second.node_id == "test-node"
        entry = second.get("a")
        assert entry is not None and entry.value == b"3"
        result = second.put_sync("c", b"4")
        assert result.seq == 4 and result.version > last_version


def test_node_id_is_generated_once_and_kept(tmp_path: Path) -> None:
    config = StoreConfig(data_dir=tmp_path / "d")
    with Store(config) as first:
        generated = first.node_id
    with Store(config) as second:
        assert second.node_id == generated


def test_a_second_open_of_the_same_dir_is_refused(store: Store, store_config: StoreConfig) -> None:
    with pytest.raises(DataDirLocked, match="in use by another kvdb process"):
        Store(store_config)


def test_closed_store_refuses_writes(store_config: StoreConfig) -> None:
    opened = Store(store_config)
    opened.close()
    opened.close()  # idempotent
    with pytest.raises(StoreClosed):
        opened.put_sync("a", b"1")


@pytest.mark.parametrize("mode", list(Durability))
def test_every_durability_mode_persists_across_reopen(tmp_path: Path, mode: Durability) -> None:
    config = StoreConfig(data_dir=tmp_path / mode.value, durability=mode, flush_interval_ms=10)
    with Store(config) as opened:
        opened.batch_sync([Put(f"k{i}", b"v") for i in range(100)])
    with Store(config) as reopened:
        assert reopened.last_seq == 100
        assert len(reopened.scan(limit=1000).items) == 100


def test_checkpoints_round_trip(store: Store) -> None:
    assert store.get_checkpoint("c1") is None

    async def run() -> None:
        await store.set_checkpoint("c1", 5)
        await store.set_checkpoint("c2", 7, pin=False)

    asyncio.run(run())
    c1 = store.get_checkpoint("c1")
    assert c1 is not None and (c1.seq, c1.pin) == (5, True)
    assert sorted((c.name, c.seq) for c in store.list_checkpoints()) == [("c1", 5), ("c2", 7)]
    assert asyncio.run(store.delete_checkpoint("c1")) is True
    assert store.get_checkpoint("c1") is None


async def test_system_records_are_not_data_and_make_no_events(store: Store) -> None:
    await store.put_system_record("streams/orders", b'{"name": "orders"}')
    await store.put_system_record("streams/users", b"{}")
    await store.put_system_record("routes/a", b"{}")
    assert store.get_system_record("streams/orders") == b'{"name": "orders"}'
    assert [k for k, _ in store.list_system_records("streams/")] == [
        "streams/orders",
        "streams/users",
    ]
    assert store.last_seq == 0 and store.scan().items == ()
    assert await store.delete_system_record("streams/users") is True
    assert await store.delete_system_record("streams/users") is False
    assert store.get_system_record("streams/users") is None


async def test_system_state_and_checkpoint_commit_together(store: Store) -> None:
    await store.put_system_record("pipelines/p/state/old", b"x")
    await store.write_system_state(
        {"pipelines/p/state/a": b"1", "pipelines/p/state/b": b"2"},
        ["pipelines/p/state/old"],
        checkpoint=("pipeline/p", 42),
    )
    records = dict(store.list_system_records("pipelines/p/"))
    assert records == {"pipelines/p/state/a": b"1", "pipelines/p/state/b": b"2"}
    checkpoint = store.get_checkpoint("pipeline/p")
    assert checkpoint is not None and (checkpoint.seq, checkpoint.pin) == (42, True)
