"""Bringing a target back after it lost history (REPLICATION 6, scenarios 10, 11 and 16): a
log compacted past the target's checkpoint, tombstones collected while a peer is cut off, a
target wiped and restarted under the same node id. Nothing deleted comes back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgpack
import pytest

from kvdb import Put
from tests.integration.cluster import Cluster, ClusterNode, converged

pytestmark = pytest.mark.slow


async def states_of(node: ClusterNode, target: str, seconds: float) -> list[str]:
    """The states ``node`` shows for ``target`` over ``seconds``, without repeats."""
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = (await node.target(target))["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        await asyncio.sleep(0.02)
    return seen


async def test_a_target_behind_a_compacted_log_gets_a_snapshot_then_the_live_tail(
    cluster: Cluster,
) -> None:
    a, b = cluster.node("a"), cluster.node("b")
    a.node_options["retention"] = {
        "max_events": 100, "hard_max_events": 300, "compaction_interval": "100ms",
    }  # fmt: skip
    cluster.mesh(a, b)
    cluster.start()
    await a.kv.batch([Put(f"k{i:04}", b"v0") for i in range(200)])
    await converged([a, b])
    b.kill()
    for i in range(0, 100):  # deletes b must learn of, then far more than the log keeps
        await a.delete(f"k{i:04}")
    # More than a stream buffers in memory (10,000), so a's sender must read the log again,
    # where b's position is gone.
    for start in range(0, 12_000, 500):
        await a.kv.batch([Put(f"n{j:05}", b"new") for j in range(start, start + 500)])
    async with asyncio.timeout(30):  # a's log no longer holds b's position
        while (await a.stats())["oldest_seq"] <= 300:
            await asyncio.sleep(0.1)
    b.start()
    seen = await states_of(a, "b", 4)
    state = await converged([a, b], timeout=60)

    target = await a.target("b")
    assert target["snapshots"] >= 1 and target["state"] == "live", target
    assert seen[-1] == "live" and ("snapshot" not in seen or seen.index("snapshot") < len(seen) - 1)
    by_key = {item["key"]: item for item in state}
    assert all(by_key[f"k{i:04}"]["deleted"] for i in range(100))
    assert all(not by_key[f"k{i:04}"]["deleted"] for i in range(100, 200))
    assert len([k for k in by_key if k.startswith("n")]) == 12_000
    for i in range(0, 100, 7):  # nothing deleted came back
        assert await b.value(f"k{i:04}") is None
    await a.put("after", "x")  # and the live tail flows again
    await converged([a, b])
    assert await b.value("after") == b"x"


def replayed_put(key: str, value: bytes, version: str, source: str, epoch: str, seq: int) -> bytes:
    """The batch that carried a put of ``key`` (seq ``seq`` of ``source``'s log), sent again."""
    hlc, origin = version.split(".")
    item = [seq, key, False, value, None, int(hlc), origin, {origin: int(hlc)}, seq]
    doc = {"source": source, "source_epoch": epoch, "target_epoch": None, "mode": "log",
           "prev_seq": seq - 1, "last_seq": seq, "items": [item]}  # fmt: skip
    return msgpack.packb(doc)


async def replay(node: ClusterNode, body: bytes) -> dict[str, Any]:
    reply = await node.http.post(
        "/sync/apply", content=body, headers={"content-type": "application/msgpack"}
    )
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = msgpack.unpackb(reply.content)
    return result


async def test_tombstones_wait_for_a_cut_off_peer_and_an_old_put_does_not_revive_the_key(
    cluster: Cluster,
) -> None:
    nodes = [cluster.node(n) for n in ("a", "b", "c")]
    for node in nodes:
        node.node_options.update(tombstone_grace="1s", retention={"compaction_interval": "100ms"})
    a, b, c = nodes
    cluster.mesh(a, b, c)
    cluster.start()
    put_version = await b.put("k", "old")
    put_seq = (await b.stats())["last_seq"]
    b_epoch = (await b.status())["epoch"]
    await b.put("kept", "x")
    await converged(nodes)
    cluster.partition([c], [a, b])
    delete_version = await a.delete("k")
    assert delete_version is not None

    async def tombstone(node: ClusterNode) -> dict[str, Any] | None:
        return next((i for i in await node.snapshot() if i["key"] == "k"), None)

    # Before collection, the tombstone's vector covers the old put, from wherever it comes.
    relayed = replayed_put("k", b"old", put_version, "z", "z-1", 1)
    assert (await replay(a, relayed))["applied"] == 0
    await asyncio.sleep(3)  # well past the grace period, many compactions
    held = await tombstone(a)
    assert held is not None and held["deleted"] and held["version"] == delete_version
    assert await c.value("k") == b"old"  # c has not heard of the delete

    cluster.heal()
    async with asyncio.timeout(30):  # c gets it; then every node may reap it
        while any([await tombstone(node) for node in nodes]):
            await asyncio.sleep(0.2)
    state = await converged(nodes)
    assert [item["key"] for item in state] == ["kept"]

    # After: the batch that carried the put, sent again, is a duplicate and changes nothing.
    original = replayed_put("k", b"old", put_version, "b", b_epoch, put_seq)
    for node in (a, c):
        result = await replay(node, original)
        assert result["duplicate"] is True and result["applied"] == 0
        assert await node.value("k") is None
    assert await converged(nodes) == state


async def test_a_wiped_target_is_detected_by_its_new_epoch_and_refilled(
    cluster: Cluster,
) -> None:
    a, b = cluster.node("a"), cluster.node("b")
    cluster.mesh(a, b)
    cluster.start()
    await a.kv.batch([Put(f"a{i}", b"from a") for i in range(300)])
    await b.kv.batch([Put(f"b{i}", b"from b") for i in range(100)])
    await a.delete("a7")
    before = await converged([a, b])
    epoch = (await b.status())["epoch"]
    b.stop()
    b.wipe()
    b.start()
    assert (await b.status())["epoch"] != epoch
    # a writes nothing more: it must notice on its own that b lost everything.
    state = await converged([a, b], timeout=60)
    assert [i for i in state if not i["key"].startswith("b")] == [
        i for i in before if not i["key"].startswith("b")
    ]
    await a.put("after", "x")
    await converged([a, b])
    events = await b.replicated_changes()
    assert len(events) == len({(e["hlc"], e["origin"]) for e in events})  # nothing twice
