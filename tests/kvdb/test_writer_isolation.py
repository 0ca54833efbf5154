"""One write that fails unexpectedly inside a commit group fails alone: the others of its
group commit, and nothing it wrote before failing is committed."""

from __future__ import annotations

import asyncio

import pytest

from kvdb import Put, StorageError, Store, WriteResult, WriteTask
from kvdb.txn import WriteContext


class _WritesThenRaises(WriteTask):
    """Writes a key, then fails the way a bug (or input a check missed) would."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error_to_raise = error

    def apply(self, ctx: WriteContext) -> None:
        ctx.put("half-written", b"half-written", b"x", None, ctx.next_seq)
        raise self.error_to_raise


class _BadLmdbWrite(WriteTask):
    """A write LMDB itself refuses (a key over its size limit)."""

    def apply(self, ctx: WriteContext) -> None:
        ctx.txn.put(b"k" * 600, b"v", db=ctx.dbs["data"])


async def _group(store: Store, bad: WriteTask, good: int = 20) -> list[object]:
    """``good`` puts and ``bad`` submitted in one event-loop turn: one commit group."""
    writes = [store.put(f"good/{i}", b"v") for i in range(good // 2)]
    writes.append(store._writer.run(bad))
    writes += [store.put(f"good/{i}", b"v") for i in range(good // 2, good)]
    return await asyncio.gather(*writes, return_exceptions=True)


@pytest.mark.parametrize(
    "error", [AttributeError("'int' has no attribute 'encode'"), ValueError("struct.error")]
)
async def test_an_unexpected_error_fails_only_its_own_write(store: Store, error: Exception) -> None:
    results = await _group(store, _WritesThenRaises(error))
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == [error]
    assert sum(isinstance(r, WriteResult) for r in results) == 20
    assert store.get("half-written") is None  # rolled back with the failed write
    events = store.read_changes(0)
    assert [e.seq for e in events] == list(range(1, 21))  # gapless, the failed write absent
    assert {e.key for e in events} == {f"good/{i}" for i in range(20)}
    assert store.stats().writer.failed_tasks == 1
    assert store.stats().writer.failed_commits == 0


async def test_an_lmdb_error_in_one_write_is_translated_and_fails_it_alone(store: Store) -> None:
    results = await _group(store, _BadLmdbWrite())
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and isinstance(failures[0], StorageError)
    assert store.last_seq == 20


async def test_a_group_of_only_failing_writes(store: Store) -> None:
    results = await asyncio.gather(
        store._writer.run(_WritesThenRaises(RuntimeError("a"))),
        store._writer.run(_WritesThenRaises(RuntimeError("b"))),
        return_exceptions=True,
    )
    assert [str(r) for r in results] == ["a", "b"]
    assert store.last_seq == 0
    store.put_sync("after", b"v")
    assert store.last_seq == 1


async def test_a_batch_stays_atomic_next_to_a_failing_write(store: Store) -> None:
    batch = store.batch([Put("b1", b"1"), Put("b2", b"2")])
    bad = store._writer.run(_WritesThenRaises(RuntimeError("bug")))
    result, failure = await asyncio.gather(batch, bad, return_exceptions=True)
    assert isinstance(failure, RuntimeError)
    assert [r.seq for r in result.results] == [1, 2]  # type: ignore[union-attr]
    assert store.get("b1") is not None and store.get("half-written") is None
