"""Link and node faults (REPLICATION 6, scenarios 14 and 15): failover to a target's next
endpoint and back, and retries that back off exponentially, capped, with full jitter."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections import Counter

import pytest

from tests.integration.cluster import Cluster, ClusterNode, converged

pytestmark = pytest.mark.slow


async def wait_for(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.05)


async def assert_each_of_a_once_on(a: ClusterNode, b: ClusterNode) -> int:
    written = Counter(f"{e['hlc']}.a" for e in await a.replicated_changes() if e["origin"] == "a")
    received = Counter(f"{e['hlc']}.a" for e in await b.replicated_changes() if e["origin"] == "a")
    assert received == written, "b is missing some of a's writes or has some twice"
    return len(written)


async def test_a_blackholed_endpoint_fails_over_to_the_next_and_back(cluster: Cluster) -> None:
    a, b = cluster.node("a"), cluster.node("b")
    first = cluster.link(a, b, endpoints=2)
    second = cluster.proxy(a, b, 1)
    cluster.link(b, a)
    cluster.start()
    await a.put("k0", "0")
    await converged([a, b])
    assert (await a.target("b"))["endpoint"] == first.url

    first.blackhole()
    writes = 1
    for i in range(1, 21):
        await a.put(f"k{i}", str(i))
        writes += 1
        await asyncio.sleep(0.05)
    await converged([a, b], timeout=60)
    target = await a.target("b")
    assert target["endpoint"] == second.url and target["failovers"] >= 1, target
    assert len(second.requests_to("/sync/apply")) >= 1
    assert await assert_each_of_a_once_on(a, b) == writes

    first.passing()  # the health check sees it answer again, and fails back
    await wait_for(lambda: endpoint_is(a, first.url))
    carried = len(first.requests_to("/sync/apply"))
    for i in range(21, 31):
        await a.put(f"k{i}", str(i))
        writes += 1
    await converged([a, b])
    assert len(first.requests_to("/sync/apply")) > carried
    assert await assert_each_of_a_once_on(a, b) == writes


async def endpoint_is(node: ClusterNode, url: str) -> bool:
    return bool((await node.target("b"))["endpoint"] == url)


async def test_retries_to_a_node_that_is_down_back_off_to_the_cap_with_jitter(
    cluster: Cluster,
) -> None:
    base, cap = 50, 400
    a = cluster.node(
        "a", retry_delay=f"{base}ms", max_retry_delay=f"{cap}ms", max_retry_count=1000,
        health_check_interval="1h",  # no probes: every connection to b is a retry
    )  # fmt: skip
    b = cluster.node("b")
    link = cluster.link(a, b)
    cluster.start()
    await a.put("k0", "0")
    await converged([a, b])
    b.kill()
    opened = len(link.accepted)
    await a.put("k1", "1")

    ceilings: list[float] = []
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        target = await a.target("b")
        if target["retry_delay_ceiling_ms"] and (
            not ceilings or ceilings[-1] != target["retry_delay_ceiling_ms"]
        ):
            ceilings.append(target["retry_delay_ceiling_ms"])
        await asyncio.sleep(0.01)
    target = await a.target("b")
    assert target["state"] == "unhealthy" and target["retries"] >= 15, target

    # The ceiling doubles from the base up to the cap, and stays there.
    assert ceilings == sorted(ceilings), ceilings
    assert ceilings[-1] == cap and ceilings[0] <= 2 * base and len(ceilings) >= 3, ceilings
    # The attempts, as the link saw them: never further apart than the cap (plus the time an
    # attempt takes), and spread out at random below it (full jitter), not at fixed steps.
    attempts = link.accepted[opened:]
    gaps = [1000 * (later - earlier) for earlier, later in itertools.pairwise(attempts)]
    late = gaps[5:]
    assert len(late) >= 10, gaps
    assert max(late) <= cap + 150, gaps
    assert statistics.pstdev(late) > 40 and max(late) - min(late) > 150, late
    assert 60 < statistics.mean(late) < cap - 60, late

    b.start()
    await converged([a, b], timeout=30)
    target = await a.target("b")
    assert target["state"] == "live" and target["retry_delay_ceiling_ms"] == 0
