"""Exactly-once application under lost replies, replays, gaps and crashes (REPLICATION 6,
scenarios 6-9): whatever the link or the processes do, every event lands once on the target
(one change-log entry), and a refused batch changes nothing."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import httpx
import msgpack
import pytest

from kvdb import Put
from tests.integration.cluster import Cluster, ClusterNode, converged

pytestmark = pytest.mark.slow


def versions(events: list[dict[str, Any]], origin: str | None = None) -> Counter[str]:
    return Counter(
        f"{e['hlc']}.{e['origin']}" for e in events if origin is None or e["origin"] == origin
    )


async def assert_each_once(source: ClusterNode, target: ClusterNode) -> int:
    """Every replicated event ``source`` originated is exactly one entry on ``target``."""
    written = versions(await source.replicated_changes(), source.id)
    received = versions(await target.replicated_changes(), source.id)
    twice = [v for v, n in received.items() if n > 1]
    assert not twice, f"{target.id} logged {len(twice)} of {source.id}'s writes twice: {twice[:3]}"
    assert set(received) == set(written), (len(written), len(received))
    return len(written)


async def test_lost_replies_are_resent_and_skipped_as_duplicates(cluster: Cluster) -> None:
    a, b = cluster.node("a"), cluster.node("b")
    link = cluster.link(a, b)
    cluster.link(b, a)
    cluster.start()
    await a.put("warm-up", "0")
    await converged([a, b])
    link.drop_responses(5)
    for i in range(10):
        await a.put(f"k{i}", str(i))
        await asyncio.sleep(0.05)
    await converged([a, b])
    assert link.dropped_replies == 5
    assert await assert_each_once(a, b) == 11
    target = await a.target("b")
    assert target["retries"] >= 5
    assert target["skipped"] >= 1  # b had applied them: the resent batches were duplicates


async def test_a_replayed_batch_is_ignored_and_a_gap_is_refused(cluster: Cluster) -> None:
    b = cluster.node("b").start()
    hlc = (await b.stats())["last_seq"]  # 0: a fresh node
    base = 1_000 + hlc

    def version(ms_ago: int) -> int:
        import time

        return (time.time_ns() // 1_000_000 - ms_ago) << 16

    v1, v2, v3 = version(3000), version(2000), version(1000)

    def body(prev: int, last: int, items: list[list[Any]], **fields: Any) -> bytes:
        doc = {"source": "z", "source_epoch": "z-1", "target_epoch": None, "mode": "log",
               "prev_seq": prev, "last_seq": last, "items": items, **fields}  # fmt: skip
        return msgpack.packb(doc)

    def item(seq: int, value: bytes, hlc: int) -> list[Any]:
        return [seq, "k", False, value, None, hlc, "z", {"z": hlc}, seq]

    async def post(content: bytes) -> httpx.Response:
        return await b.http.post(
            "/sync/apply", content=content, headers={"content-type": "application/msgpack"}
        )

    async def observed() -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
        return (await b.stats())["last_seq"], await b.snapshot(), (await b.status())["inbound"]

    first = body(0, base + 1, [item(base + 1, b"one", v1)])
    assert (await post(first)).status_code == 200
    second = body(base + 1, base + 2, [item(base + 2, b"two", v2)])
    assert msgpack.unpackb((await post(second)).content)["applied"] == 1
    before = await observed()
    assert await b.value("k") == b"two"

    for replay in (first, second):  # old batches, again: answered as duplicates, ignored
        reply = await post(replay)
        assert reply.status_code == 200
        assert msgpack.unpackb(reply.content)["duplicate"] is True
    assert await observed() == before

    gap = body(base + 5, base + 6, [item(base + 6, b"after a gap", v3)])
    refused = await post(gap)
    assert refused.status_code == 409 and refused.json()["error"] == "sequence_gap"
    stale_epoch = body(base + 2, base + 3, [item(base + 3, b"other life", v3)], source_epoch="z-0")
    refused = await post(stale_epoch)
    assert refused.status_code == 409 and refused.json()["error"] == "epoch_mismatch"
    wrong_target = body(base + 2, base + 3, [item(base + 3, b"wrong", v3)], target_epoch="nope")
    refused = await post(wrong_target)
    assert refused.status_code == 409 and refused.json()["error"] == "epoch_mismatch"
    assert await observed() == before

    # A batch overlapping the checkpoint applies only what is past it.
    overlap = body(base + 1, base + 3, [item(base + 2, b"two", v2), item(base + 3, b"three", v3)])
    result = msgpack.unpackb((await post(overlap)).content)
    assert (result["applied"], result["checkpoint"]) == (1, base + 3)
    assert await b.value("k") == b"three"
    assert len(await b.replicated_changes()) == 3


async def test_sigkill_of_the_receiver_during_writes_loses_and_doubles_nothing(
    cluster: Cluster,
) -> None:
    a, b = cluster.node("a"), cluster.node("b")
    cluster.mesh(a, b)
    cluster.start()
    writes, per_txn = 10_000, 10
    done = asyncio.Event()

    async def writer(w: int, count: int) -> None:
        for i in range(0, count, per_txn):
            ops = [Put(f"w{w}/{i + j}", f"{w}:{i + j}".encode()) for j in range(per_txn)]
            await a.kv.batch(ops)

    async def killer() -> None:
        rng = random.Random(8)
        for _ in range(3):
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            if done.is_set():
                break
            b.kill()
            await asyncio.sleep(rng.uniform(0.1, 1.0))
            await asyncio.to_thread(b.start)

    kills = asyncio.create_task(killer())
    await asyncio.gather(*(writer(w, writes // 4) for w in range(4)))
    done.set()
    await kills
    await converged([a, b], timeout=120)
    assert await assert_each_once(a, b) == writes


async def test_sigkill_of_the_sender_after_an_apply_before_its_bookkeeping_sends_nothing_twice(
    cluster: Cluster,
) -> None:
    a, b = cluster.node("a", request_timeout="10s"), cluster.node("b")
    link = cluster.link(a, b)
    cluster.start()
    await a.put("k0", "0")
    await converged([a, b])
    for round_no in range(1, 4):
        link.drop_responses(1)
        key = f"k{round_no}"
        await a.put(key, str(round_no))
        async with asyncio.timeout(10):  # b applied it; a waits for the reply it never gets
            while await b.value(key) is None or link.dropped_replies < round_no:
                await asyncio.sleep(0.01)
        a.kill()
        await asyncio.to_thread(a.start)
        await a.put(f"after{round_no}", "x")
        await converged([a, b])
        target = await a.target("b")
        assert target["sent"] == 1, target  # only the new write: the handshake said b had it
    assert await assert_each_once(a, b) == 7
