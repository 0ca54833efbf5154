"""Replication topologies on real nodes (REPLICATION 6, scenarios 1-3): A⇄B under concurrent
writes, a mesh of three, a relaying chain. Every node ends with the same versioned state, and
every effective write is exactly one change-log entry on every node: nothing echoes back,
nothing is applied twice."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest

from tests.integration.cluster import Cluster, ClusterNode, converged

pytestmark = pytest.mark.slow


def dots(events: list[dict[str, Any]]) -> Counter[str]:
    """How often each version (``hlc.origin``) appears in a change log."""
    return Counter(f"{e['hlc']}.{e['origin']}" for e in events)


def assert_no_duplicates(node: ClusterNode, events: list[dict[str, Any]]) -> None:
    twice = [version for version, n in dots(events).items() if n > 1]
    assert not twice, f"{node.id} logged {len(twice)} versions more than once, e.g. {twice[:3]}"


async def write_mix(node: ClusterNode, own: str, shared: str, ops: int) -> None:
    """``ops`` random puts and deletes from 8 connections, on this node's own keys and on
    keys both sides write."""
    rng = random.Random(node.id)
    queue = list(range(ops))

    async def worker() -> None:
        while queue:
            i = queue.pop()
            key = (
                f"{own}/{rng.randrange(400)}"
                if rng.random() < 0.8
                else f"{shared}/{rng.randrange(50)}"
            )
            if rng.random() < 0.25:
                await node.raw.delete(key)
            else:
                await node.raw.put(key, f"{node.id}:{i}".encode())

    await asyncio.gather(*(worker() for _ in range(8)))


def version_of(event: dict[str, Any]) -> tuple[int, str]:
    return int(event["hlc"]), event["origin"]


async def test_two_way_concurrent_writes_converge_with_one_entry_per_write(
    cluster: Cluster,
) -> None:
    a, b = cluster.node("a"), cluster.node("b")
    cluster.mesh(a, b)
    cluster.start()
    await asyncio.gather(write_mix(a, "a", "s", 5000), write_mix(b, "b", "s", 5000))
    state = await converged([a, b], timeout=120)

    logs = {node.id: await node.replicated_changes() for node in (a, b)}
    # A node's effective writes are the entries it originated in its own log (a delete of a
    # missing key, for one, is not an effective write).
    effective = {
        node.id: dots([e for e in logs[node.id] if e["origin"] == node.id]) for node in (a, b)
    }
    assert sum(len(v) for v in effective.values()) > 7000
    written = effective["a"] | effective["b"]
    final = {item["key"]: item for item in state}
    newest: dict[str, tuple[int, str]] = {}
    for event in logs["a"] + logs["b"]:
        newest[event["key"]] = max(newest.get(event["key"], (0, "")), version_of(event))
    for key, version in newest.items():  # last writer wins: nothing written is lost
        hlc, origin = final[key]["version"].split(".")
        assert (int(hlc), origin) == version, (key, final[key], version)
    for node in (a, b):
        events = logs[node.id]
        assert_no_duplicates(node, events)
        logged = dots(events)
        assert set(logged) <= set(written), f"{node.id} logged versions nobody wrote"
        for prefix, own in (("a/", logs["a"]), ("b/", logs["b"])):
            # Keys one side writes alone: every write is exactly one entry on both nodes.
            origin = prefix[0]
            expected = dots(
                [e for e in own if e["origin"] == origin and e["key"].startswith(prefix)]
            )
            on_node = dots([e for e in events if e["key"].startswith(prefix)])
            assert on_node == expected, (node.id, prefix, len(expected), len(on_node))
        # Every final version is in every log.
        assert {item["version"] for item in state} <= set(logged)


async def test_mesh_of_three_one_write_is_one_entry_everywhere_and_then_quiet(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.node("a"), cluster.node("b"), cluster.node("c")
    cluster.mesh(a, b, c)
    cluster.start()
    version = await a.put("greeting", "hello")
    state = await converged([a, b, c])
    assert [(item["key"], item["version"], item["value"]) for item in state] == [
        ("greeting", version, "hello")
    ]
    for node in (a, b, c):
        events = await node.replicated_changes()
        assert [(e["key"], f"{e['hlc']}.{e['origin']}") for e in events] == [("greeting", version)]

    async def carried() -> list[int]:
        targets = [await node.targets() for node in (a, b, c)]
        counts = [t["sent"] for ts in targets for t in ts.values()]
        counts += [len(proxy.requests_to("/sync/apply")) for proxy in cluster.all_links]
        return counts

    before = await carried()
    await asyncio.sleep(2.5)  # several health-check intervals and heartbeats
    assert await carried() == before, "the links carried batches after the mesh converged"
    for node in (a, b, c):  # and nothing was written since
        assert len(await node.changes()) == 1


async def test_a_chain_relays_both_ways_with_one_entry_per_node(cluster: Cluster) -> None:
    a, b, c = (cluster.node(n, forward="all") for n in ("a", "b", "c"))
    for x, y in ((a, b), (b, a), (b, c), (c, b)):  # a - b - c: a and c never talk
        cluster.link(x, y)
    cluster.start()
    written = {}
    for i in range(50):
        written[await a.put(f"from-a/{i}", f"a{i}")] = f"from-a/{i}"
        written[await c.put(f"from-c/{i}", f"c{i}")] = f"from-c/{i}"
    written[await a.put("both", "a")] = "both"
    written[await c.put("both", "c")] = "both"
    for i in range(0, 50, 5):
        written[await c.put(f"from-a/{i}", "c overwrote")] = f"from-a/{i}"  # once it is there
    deleted = await a.delete("from-c/3")
    # Values and versions converge; vectors may not: when b resolves the concurrent writes
    # of "both" and keeps the one it got first, the loser is not in b's log, so it is not
    # relayed, and the node past b never merges its dot (nor records the conflict).
    state = await converged([a, b, c], vectors=False)
    by_key = {item["key"]: item for item in state}
    assert len([k for k in by_key if k.startswith("from-")]) == 100
    assert by_key["from-c/3"]["deleted"] in (True, False)
    for node in (a, b, c):
        events = await node.replicated_changes()
        assert_no_duplicates(node, events)
        assert {item["version"] for item in state} <= set(dots(events))
        assert all(e["origin"] in ("a", "c") for e in events)  # b relays, never originates
    # Split horizon: b relays a's writes to c and c's to a, never back where they came from;
    # and nothing a originated comes back to a as a remote entry.
    for node, foreign in ((a, "c"), (c, "a")):
        for e in await node.replicated_changes():
            if e["origin"] == foreign:
                assert e.get("source") == "b", e
            if e["origin"] == node.id:
                assert "source" not in e, e
    assert deleted is not None
