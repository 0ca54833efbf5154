"""Concurrent writes across a partition (REPLICATION 6, scenarios 4 and 5): after the heal
both nodes pick the same winner without talking, and list the same conflict record."""

from __future__ import annotations

import pytest

from tests.integration.cluster import Cluster, ClusterNode, converged

pytestmark = pytest.mark.slow


def newer(x: str, y: str) -> str:
    """The greater of two version strings (``hlc.origin``): what lww keeps."""
    return max(x, y, key=lambda v: (int(v.split(".")[0]), v.split(".")[1]))


async def pair(cluster: Cluster, **sync_options: object) -> tuple[ClusterNode, ClusterNode]:
    a, b = cluster.node("a", **sync_options), cluster.node("b", **sync_options)
    cluster.mesh(a, b)
    cluster.start()
    return a, b


async def test_partitioned_writes_of_one_key_pick_one_winner_and_one_conflict_id(
    cluster: Cluster,
) -> None:
    a, b = await pair(cluster)
    await a.put("k", "before")
    await converged([a, b])
    cluster.partition([a], [b])
    version_a = await a.put("k", "from a")
    version_b = await b.put("k", "from b")
    await b.put("other", "only b")  # and something that does not conflict
    assert await a.value("k") == b"from a" and await b.value("k") == b"from b"
    cluster.heal()
    state = await converged([a, b])

    winner = newer(version_a, version_b)
    item = next(item for item in state if item["key"] == "k")
    assert item["version"] == winner
    assert item["value"] == ("from a" if winner == version_a else "from b")
    conflicts_a, conflicts_b = await a.conflicts(), await b.conflicts()
    assert len(conflicts_a) == len(conflicts_b) == 1

    def essence(record: dict[str, object]) -> dict[str, object]:
        return {k: v for k, v in record.items() if k not in ("seq", "detected_ms")}

    assert essence(conflicts_a[0]) == essence(conflicts_b[0])
    record = conflicts_a[0]
    assert record["key"] == "k" and record["winner"] == winner and record["policy"] == "lww"
    assert sorted(v["version"] for v in record["versions"]) == sorted([version_a, version_b])


@pytest.mark.parametrize("policy", ["lww", "delete_wins"])
async def test_a_delete_against_a_concurrent_update_is_decided_by_the_policy(
    cluster: Cluster, policy: str
) -> None:
    a, b = await pair(cluster, conflict_policy=policy)
    for key in ("deleted-first", "updated-first"):
        await a.put(key, "v0")
    await converged([a, b])
    cluster.partition([a], [b])
    # Both orders: the delete older than the update, and newer.
    deleted_first = await a.delete("deleted-first")
    updated_first = await b.put("deleted-first", "v1")
    updated_second = await b.put("updated-first", "v1")
    deleted_second = await a.delete("updated-first")
    assert deleted_first and deleted_second
    cluster.heal()
    state = {item["key"]: item for item in await converged([a, b])}

    for key, delete_version, update_version in (
        ("deleted-first", deleted_first, updated_first),
        ("updated-first", deleted_second, updated_second),
    ):
        item = state[key]
        if policy == "delete_wins":
            assert item["deleted"] and item["version"] == delete_version, key
        else:
            winner = newer(delete_version, update_version)
            assert item["version"] == winner, key
            assert item["deleted"] == (winner == delete_version), key
        for node in (a, b):
            records = [r for r in await node.conflicts() if r["key"] == key]
            assert len(records) == 1 and records[0]["policy"] == policy, (node.id, key)
            assert records[0]["winner"] == item["version"]
    # A delete that won stays deleted: the value does not come back through either node.
    for key, item in state.items():
        if item["deleted"]:
            assert await a.value(key) is None and await b.value(key) is None
