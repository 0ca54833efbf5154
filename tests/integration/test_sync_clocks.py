"""Clock skew between nodes (REPLICATION 6, scenarios 12 and 13), with a node whose wall clock
is set ahead by the test-only ``KVDB_TEST_CLOCK_SKEW_MS`` (kvdb/hlc.py)."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.cluster import Cluster, ClusterNode, converged

pytestmark = pytest.mark.slow


def skewed_pair(cluster: Cluster, skew_ms: int) -> tuple[ClusterNode, ClusterNode]:
    a, b = cluster.node("a"), cluster.node("b")
    b.env["KVDB_TEST_CLOCK_SKEW_MS"] = str(skew_ms)
    cluster.mesh(a, b)
    cluster.start()
    return a, b


def hlc_ms(version: str) -> int:
    return int(version.split(".")[0]) >> 16


async def test_batches_from_a_clock_ten_minutes_ahead_are_refused_and_shown(
    cluster: Cluster,
) -> None:
    a, b = skewed_pair(cluster, 10 * 60_000)
    from_b = await b.put("from-b", "future")
    from_a = await a.put("from-a", "now")
    assert hlc_ms(from_b) - hlc_ms(from_a) > 9 * 60_000
    async with asyncio.timeout(20):
        while True:
            target = await b.target("a")
            if target["state"] == "unhealthy" and target["last_error"]:
                break
            await asyncio.sleep(0.05)
    assert "clock_skew" in target["last_error"] and "max_clock_skew" in target["last_error"]
    assert target["applied"] == 0
    await asyncio.sleep(1)  # retries keep being refused; nothing of it is ever applied
    assert await a.value("from-b") is None
    assert [e["key"] for e in await a.replicated_changes()] == ["from-a"]
    assert (await b.target("a"))["state"] == "unhealthy"
    assert (await a.status())["inbound"] == []  # not even the checkpoint moved
    # The other way is fine: a's versions are behind b's clock, not ahead.
    async with asyncio.timeout(20):
        while await b.value("from-a") is None:
            await asyncio.sleep(0.05)


async def test_a_clock_three_seconds_ahead_is_accepted_and_a_later_write_still_wins(
    cluster: Cluster,
) -> None:
    a, b = skewed_pair(cluster, 3000)
    from_b = await b.put("k", "from b, 3 s ahead")
    await converged([a, b])
    assert await a.value("k") == b"from b, 3 s ahead"
    from_a = await a.put("k", "from a, after it")  # a has observed b's clock
    assert int(from_a.split(".")[0]) > int(from_b.split(".")[0])
    assert hlc_ms(from_a) >= hlc_ms(from_b)  # a's clock jumped ahead with b's, not behind it
    state = await converged([a, b])
    item = next(i for i in state if i["key"] == "k")
    assert (item["version"], item["value"]) == (from_a, "from a, after it")
    assert await a.conflicts() == [] and await b.conflicts() == []  # a had seen b's write
