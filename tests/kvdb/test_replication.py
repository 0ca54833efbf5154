"""Applying remote versions: the merge rule, inbound checkpoints, conflicts, skew, snapshots
and tombstone collection (REPLICATION 1-3, 5), on real LMDB stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from kvdb import (
    ClockSkew,
    EpochMismatch,
    EventType,
    RemoteBatch,
    RemoteItem,
    Resolution,
    SequenceGap,
    Store,
    StoreConfig,
    ValidationError,
    Version,
    VersionedValue,
    conflict_id,
)
from kvdb.config import RetentionPolicy
from kvdb.hlc import COUNTER_BITS
from kvdb.versions import decode_vector, encode_vector

NOW = 1_700_000_000_000
SKEW = 5_000


def hlc(ms_offset: int, counter: int = 0) -> int:
    return ((NOW + ms_offset) << COUNTER_BITS) + counter


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def wall() -> Clock:
    return Clock()


@pytest.fixture
def node(tmp_path: Path, wall: Clock) -> Iterator[Store]:
    with Store(StoreConfig(data_dir=tmp_path / "a", node_id="a"), clock=wall) as store:
        yield store


def put(key: str, value: bytes, version: int, origin: str, vector: dict[str, int] | None = None,
        seq: int = 0, txn: int = 0) -> RemoteItem:  # fmt: skip
    return RemoteItem(seq, key, False, value, "text/plain", version, origin,
                      vector or {origin: version}, txn)  # fmt: skip


def delete(key: str, version: int, origin: str, vector: dict[str, int] | None = None,
           seq: int = 0) -> RemoteItem:  # fmt: skip
    return RemoteItem(seq, key, True, None, None, version, origin, vector or {origin: version})


def batch(items: list[RemoteItem], prev: int = 0, last: int | None = None, source: str = "b",
          epoch: str = "e-b", snapshot: bool = False) -> RemoteBatch:  # fmt: skip
    for position, item in enumerate(items, start=prev + 1):
        if not snapshot and not item.seq:
            items[position - prev - 1] = item._replace(seq=position)
    return RemoteBatch(source, epoch, prev, last if last is not None else prev + len(items),
                       items, snapshot=snapshot)  # fmt: skip


def apply(store: Store, b: RemoteBatch, **kwargs: object):  # type: ignore[no-untyped-def]
    return store.replica.apply_sync(b, max_clock_skew_ms=SKEW, **kwargs)  # type: ignore[arg-type]


# -- the merge rule, every relation of versions ---------------------------------------------


def test_a_new_key_is_stored_with_its_own_version_and_logged_with_its_source(node: Store) -> None:
    result = apply(node, batch([put("k", b"v", hlc(-10), "b")]))
    assert (result.applied, result.skipped, result.conflicts, result.checkpoint) == (1, 0, 0, 1)
    entry = node.get("k")
    assert entry is not None and entry.version == Version(hlc(-10), "b")
    [event] = node.read_changes(0)
    assert (event.type, event.origin, event.hlc, event.source) == (
        EventType.INSERT, "b", hlc(-10), "b")  # fmt: skip
    assert event.content_type == "text/plain" and event.vector() == {"b": hlc(-10)}


def test_a_covered_version_writes_and_logs_nothing(node: Store) -> None:
    apply(node, batch([put("k", b"v2", hlc(-5), "b")]))
    before = node.last_seq
    # an older write of b, arriving late through another path: b's newer one covers it
    result = apply(node, batch([put("k", b"v1", hlc(-9), "b")], source="c", epoch="e-c"))
    assert (result.applied, result.skipped) == (0, 1)
    assert node.last_seq == before and node.get("k").value == b"v2"  # type: ignore[union-attr]


def test_a_newer_version_that_saw_the_local_one_replaces_it(node: Store) -> None:
    local = node.put_sync("k", b"mine")
    assert local.version is not None
    seen = {"a": local.version.hlc, "b": hlc(1)}
    result = apply(node, batch([put("k", b"theirs", hlc(1), "b", seen)]))
    assert (result.applied, result.conflicts) == (1, 0)
    entry = node.get("k")
    assert entry is not None and (entry.value, entry.version) == (b"theirs", Version(hlc(1), "b"))
    assert node.read_changes(1)[0].type is EventType.UPDATE


def test_a_local_write_after_a_remote_one_covers_it(node: Store) -> None:
    apply(node, batch([put("k", b"theirs", hlc(100), "b")]))
    mine = node.put_sync("k", b"mine")
    assert mine.version is not None and mine.version.hlc > hlc(100)  # the clock observed it
    [_, event] = node.read_changes(0)
    assert event.vector() == {"b": hlc(100), "a": mine.version.hlc}
    # b's write arriving again is covered now
    again = apply(node, batch([put("k", b"theirs", hlc(100), "b")], source="c", epoch="e-c"))
    assert again.skipped == 1


def test_concurrent_versions_conflict_and_lww_picks_the_greater(node: Store) -> None:
    local = node.put_sync("k", b"mine")
    assert local.version is not None
    later = local.version.hlc + 1
    result = apply(node, batch([put("k", b"theirs", later, "b")]))
    assert (result.applied, result.conflicts) == (0, 1)
    entry = node.get("k")
    assert entry is not None and entry.value == b"theirs"
    [record] = node.replica.conflicts()
    doc = record.document
    assert doc["id"] == conflict_id("k", local.version, Version(later, "b"))
    assert doc["winner"] == f"{later}.b" and doc["policy"] == "lww"
    assert [v["version"] for v in doc["versions"]] == [str(local.version), f"{later}.b"]
    # the conflict is also an event on the reserved key, for routes and handlers
    stored = node.get(f"_sync/conflicts/{doc['id']}")
    assert stored is not None and orjson.loads(stored.value) == doc
    # the stored vector covers both writes: a redelivery is skipped
    assert apply(node, batch([put("k", b"theirs", later, "b")], 1)).duplicate is False


def test_when_the_local_version_wins_it_keeps_its_value_and_learns_the_other(node: Store) -> None:
    apply(node, batch([put("k", b"mine-ish", hlc(50), "c")], source="c", epoch="e-c"))
    result = apply(node, batch([put("k", b"theirs", hlc(10), "b")]))
    assert result.conflicts == 1
    entry = node.get("k")
    assert entry is not None and entry.value == b"mine-ish"
    with node._env.read() as txn:
        from kvdb.codec import decode_record

        raw = txn.get(b"k", db=node._dbs["data"])
        assert raw is not None
        record = decode_record(raw)
    assert record.vector() == {"c": hlc(50), "b": hlc(10)}


def test_a_conflict_id_is_the_same_whichever_side_meets_it(tmp_path: Path, wall: Clock) -> None:
    docs = []
    for me, other in (("a", "b"), ("b", "a")):
        config = StoreConfig(data_dir=tmp_path / me, node_id=me)
        with Store(config, clock=wall) as store:
            apply(store, batch([put("k", b"x" + me.encode(), hlc(1), me)], source=me + "x",
                               epoch="e"))  # fmt: skip
            apply(store, batch([put("k", b"x" + other.encode(), hlc(1), other)]
                               , source="z", epoch="e"))  # fmt: skip
            docs.append(store.replica.conflicts()[0].document)
    assert docs[0] == docs[1]


def test_a_custom_resolver_decides_and_a_failing_one_falls_back_to_lww(node: Store) -> None:
    def deletes_win(key: str, local: VersionedValue, remote: VersionedValue) -> Resolution:
        return Resolution(remote.deleted and not local.deleted, "delete_wins")

    node.put_sync("k", b"mine")
    apply(node, batch([delete("k", hlc(-1000), "b")]), resolver=deletes_win)
    assert node.get("k") is None
    assert node.replica.conflicts()[0].document["policy"] == "delete_wins"

    def broken(key: str, local: VersionedValue, remote: VersionedValue) -> Resolution:
        raise RuntimeError("boom")

    node.put_sync("j", b"mine")
    apply(node, batch([put("j", b"theirs", hlc(-1000), "b")], 1), resolver=broken)
    entry = node.get("j")
    assert entry is not None and entry.value == b"mine"  # lww: the local write is later
    doc = node.replica.conflicts()[-1].document
    assert doc["policy"] == "lww" and "resolver failed (RuntimeError: boom)" in doc["note"]


def test_a_tombstone_is_stored_for_a_key_never_seen(node: Store) -> None:
    # b deleted a key after seeing c's write of it; this node has seen neither
    apply(node, batch([delete("gone", hlc(-3), "b", {"b": hlc(-3), "c": hlc(-9)})]))
    assert node.get("gone") is None
    [event] = node.read_changes(0)
    assert (event.type, event.old_value, event.origin) == (EventType.DELETE, None, "b")
    # c's put, arriving later, is covered by the tombstone's vector: the key stays deleted
    older = put("gone", b"v", hlc(-9), "c")
    assert apply(node, batch([older], source="c", epoch="e-c")).skipped == 1
    assert node.get("gone") is None and node.last_seq == 1


# -- checkpoints, epochs, gaps and skew ------------------------------------------------------


def test_duplicates_gaps_and_overlaps(node: Store) -> None:
    items = [put(f"k{i}", b"v", hlc(-100 + i), "b") for i in range(4)]
    assert apply(node, batch(items[:2])).checkpoint == 2
    last = node.last_seq
    replay = apply(node, batch(items[:2]))
    assert replay.duplicate and node.last_seq == last
    with pytest.raises(SequenceGap) as gap:
        apply(node, batch(items[3:], prev=3))
    assert gap.value.fields["checkpoint"] == 2
    overlap = apply(node, batch(items[1:], prev=1))  # seq 2 again, then 3 and 4
    assert (overlap.applied, overlap.checkpoint) == (2, 4)
    assert node.replica.inbound("b") is not None and node.replica.inbound("b").seq == 4  # type: ignore[union-attr]


def test_epochs_of_the_source_and_of_this_store(node: Store) -> None:
    apply(node, batch([put("k", b"v", hlc(-1), "b")]))
    with pytest.raises(EpochMismatch):  # b was wiped: its seq 1 means something else now
        apply(node, batch([put("j", b"v", hlc(-1), "b")], prev=1, epoch="e-b2"))
    fresh = apply(node, batch([put("j", b"v", hlc(-1), "b")], epoch="e-b2"))
    assert fresh.checkpoint == 1 and node.replica.inbound("b").epoch == "e-b2"  # type: ignore[union-attr]
    stale = batch([put("x", b"v", hlc(-1), "b")], prev=1, epoch="e-b2")._replace(
        target_epoch="not-this-store"
    )
    with pytest.raises(EpochMismatch):
        apply(node, stale)
    ok = stale._replace(target_epoch=node.epoch)
    assert apply(node, ok).applied == 1


def test_versions_too_far_ahead_are_refused_whole(node: Store) -> None:
    items = [put("ok", b"v", hlc(0), "b"), put("late", b"v", hlc(SKEW + 60_000), "b")]
    with pytest.raises(ClockSkew) as info:
        apply(node, batch(items))
    assert info.value.fields["ahead_ms"] == SKEW + 60_000
    assert node.get("ok") is None and node.last_seq == 0 and node.replica.inbound("b") is None
    # 3 s ahead is accepted, and the next local write still wins
    apply(node, batch([put("k", b"theirs", hlc(3_000), "b")]))
    mine = node.put_sync("k", b"mine")
    assert mine.version is not None and mine.version > Version(hlc(3_000), "b")


def test_bad_batches_are_refused_before_the_writer(node: Store) -> None:
    with pytest.raises(ValidationError, match="same id"):
        apply(node, batch([put("k", b"v", hlc(0), "a")], source="a"))
    with pytest.raises(ValidationError, match="reserved"):
        apply(node, batch([put("_x", b"v", hlc(0), "b")]))
    with pytest.raises(ValidationError, match="own version"):
        apply(node, batch([put("k", b"v", hlc(0), "b", {"b": hlc(-1)})]))


# -- snapshots and tombstone collection ------------------------------------------------------


def test_a_versioned_scan_carries_tombstones_and_skips_reserved_keys(node: Store) -> None:
    for i in range(5):
        node.put_sync(f"k{i}", b"v")
    node.delete_sync("k1")
    apply(node, batch([put("zz", b"v", hlc(-1), "b")]))
    page, after = node.replica.scan_versions(limit=3)
    assert [(i.key, i.deleted) for i in page] == [("k0", False), ("k1", True), ("k2", False)]
    rest, end = node.replica.scan_versions(after=after, limit=10)
    assert [i.key for i in rest] == ["k3", "k4", "zz"] and end is None
    assert rest[-1].version == Version(hlc(-1), "b")


async def test_snapshot_pages_then_the_checkpoint(tmp_path: Path, wall: Clock) -> None:
    with Store(StoreConfig(data_dir=tmp_path / "b", node_id="b"), clock=wall) as source, \
         Store(StoreConfig(data_dir=tmp_path / "c", node_id="c"), clock=wall) as target:  # fmt: skip
        for i in range(10):
            source.put_sync(f"k{i}", b"v")
        source.delete_sync("k3")
        items, _ = source.replica.scan_versions(limit=100)
        snap = RemoteBatch("b", source.epoch, 0, 0, items, target.epoch, snapshot=True)
        result = await target.replica.apply(snap, max_clock_skew_ms=SKEW)
        assert result.applied == 10 and target.replica.inbound("b") is None
        await target.replica.finish_snapshot("b", source.epoch, source.last_seq, target.epoch)
        assert target.replica.inbound("b").seq == source.last_seq  # type: ignore[union-attr]
        assert [e.key for e in target.scan(limit=100).items] == [
            f"k{i}" for i in range(10) if i != 3]  # fmt: skip
        again = await target.replica.apply(snap, max_clock_skew_ms=SKEW)
        assert (again.applied, again.skipped) == (0, 10)


def test_tombstones_wait_for_knowledge_and_for_the_guard(tmp_path: Path, wall: Clock) -> None:
    retention = RetentionPolicy(compaction_interval_ms=3_600_000)
    config = StoreConfig(data_dir=tmp_path / "a", node_id="a", tombstone_grace_ms=1000,
                         retention=retention)  # fmt: skip
    with Store(config, clock=wall) as store:
        # b deleted a key after seeing c's write that this node has not received yet
        apply(store, batch([delete("k", hlc(0), "b", {"b": hlc(0), "c": hlc(-5)})]))
        store.put_sync("mine", b"v")
        store.delete_sync("mine")
        wall.now += 10_000
        allowed: set[int] = set()
        store.replica.tombstone_guard = lambda seq: seq in allowed
        store.compact_sync()
        assert _records(store) == {"k", "mine"}
        allowed.add(3)  # every peer holds the local tombstone (seq 3), but c's write is missing
        store.compact_sync()
        assert _records(store) == {"k", "mine"}  # k is older and blocks the queue
        apply(store, batch([put("other", b"v", hlc(-5), "c")], source="c", epoch="e-c"))
        allowed.add(1)
        store.compact_sync()
        assert _records(store) == {"other"}


def test_conflict_records_are_kept_up_to_a_count_and_an_age(tmp_path: Path, wall: Clock) -> None:
    retention = RetentionPolicy(compaction_interval_ms=3_600_000, max_conflicts=2,
                                max_conflict_age_ms=60_000)  # fmt: skip
    config = StoreConfig(data_dir=tmp_path / "a", node_id="a", retention=retention)
    with Store(config, clock=wall) as store:
        for i in range(3):
            local = store.put_sync(f"k{i}", b"mine")
            assert local.version is not None
            apply(store, batch([put(f"k{i}", b"theirs", local.version.hlc + 1, "b")], i))
            wall.now += 1000
        oldest = store.replica.conflicts()[0].document["id"]
        store.compact_sync()
        assert [r.document["key"] for r in store.replica.conflicts()] == ["k1", "k2"]
        assert store.replica.conflict_count() == 2
        assert store.get(f"_sync/conflicts/{oldest}") is None  # its record went with it
        wall.now += 60_000
        store.compact_sync()
        assert store.replica.conflicts() == [] and store.replica.conflict_count() == 0
        assert not any(key.startswith("_sync/conflicts/") for key in _records(store))
        assert [store.get(f"k{i}").value for i in range(3)] == [b"theirs"] * 3  # type: ignore[union-attr]


def _records(store: Store) -> set[str]:
    with store._env.read() as txn, txn.cursor(db=store._dbs["data"]) as cursor:
        return {bytes(k).decode() for k, _ in cursor}


def test_vectors_encode_compactly() -> None:
    assert encode_vector({"a": 5}, 5, "a") == b""
    raw = encode_vector({"b": 7, "a": 5}, 5, "a")
    assert decode_vector(raw, 5, "a") == {"a": 5, "b": 7}
    assert decode_vector(b"", 9, "z") == {"z": 9}
    assert str(Version(12, "a.b")) == "12.a.b" and Version.parse("12.a.b") == Version(12, "a.b")
    with pytest.raises(ValueError, match="not a version"):
        Version.parse("12")
