"""A soak (REPLICATION 6, scenario 17): a mesh of three under writes while links are cut,
stalled, slowed and reset and nodes are killed with SIGKILL, at random; then everything heals.
The nodes end identical; every acknowledged write is present or superseded by a greater
version; no deleted key comes back; no node logs a version twice.

``KVDB_SOAK_SECONDS`` sets how long the faults go on (default 60); ``KVDB_SOAK_SEED`` replays
a run (the seed is printed when it fails).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from dataclasses import dataclass

import pytest

from tests.integration.cluster import Cluster, ClusterNode, converged
from tests.integration.rawhttp import WriteFailed

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("KVDB_SOAK_SECONDS", "60"))
KEYS = 200


@dataclass(frozen=True)
class Acked:
    key: str
    version: tuple[int, str]
    deleted: bool
    node: str


def parse(version: str) -> tuple[int, str]:
    hlc, origin = version.split(".", 1)
    return int(hlc), origin


async def writer(
    node: ClusterNode, rng: random.Random, stop: asyncio.Event, acked: list[Acked]
) -> None:
    i = 0
    while not stop.is_set():
        key = f"k{rng.randrange(KEYS)}"
        try:
            if rng.random() < 0.3:
                version = await node.raw.delete(key)
                if version is not None:
                    acked.append(Acked(key, parse(version), True, node.id))
            else:
                version = await node.raw.put(key, f"{node.id}:{i}".encode())
                acked.append(Acked(key, parse(version), False, node.id))
        except WriteFailed:
            await asyncio.sleep(0.1)  # down or cut off: not acknowledged, so not counted
        i += 1


async def chaos(
    cluster: Cluster, nodes: list[ClusterNode], rng: random.Random, until: float, log: list[str]
) -> None:
    """One fault at a time, each followed by a heal."""
    while time.monotonic() < until:
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        fault = rng.choice(["partition", "kill", "reset", "slow", "drop", "one_way"])
        victim = rng.choice(nodes)
        others = [n for n in nodes if n is not victim]
        log.append(f"{time.monotonic():.1f} {fault} {victim.id}")
        if fault == "partition":
            cluster.partition([victim], others)
        elif fault == "one_way":
            for other in others:
                cluster.proxy(victim, other).blackhole()
        elif fault == "kill":
            victim.kill()
        elif fault == "reset":
            for other in others:
                cluster.proxy(victim, other).reset()
                cluster.proxy(other, victim).reset()
        elif fault == "slow":
            for proxy in cluster.all_links:
                proxy.delay(rng.uniform(5, 100))
        elif fault == "drop":
            for other in others:
                cluster.proxy(other, victim).drop_responses(rng.randint(1, 3))
        await asyncio.sleep(rng.uniform(0.5, 3.0))
        if fault == "kill":
            await asyncio.to_thread(victim.start)
        cluster.heal()


async def test_a_mesh_under_random_partitions_and_kills_converges_and_keeps_every_write(
    cluster: Cluster,
) -> None:
    seed = int(os.environ.get("KVDB_SOAK_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    nodes = [cluster.node(n) for n in ("a", "b", "c")]
    cluster.mesh(*nodes)
    cluster.start()
    acked: list[Acked] = []
    faults: list[str] = []
    stop = asyncio.Event()
    writers = [
        asyncio.create_task(writer(node, random.Random(rng.random()), stop, acked))
        for node in nodes
        for _ in range(2)
    ]
    try:
        await chaos(cluster, nodes, rng, time.monotonic() + SECONDS, faults)
    finally:
        stop.set()
        await asyncio.gather(*writers)
    cluster.heal()
    for node in nodes:
        if not node.process.running:
            await asyncio.to_thread(node.start)

    context = f"seed {seed}, {len(acked)} acknowledged writes, faults: {faults}"
    state = await converged(nodes, timeout=180)
    assert len(acked) > 500, context
    final = {item["key"]: item for item in state}
    for write in acked:
        item = final.get(write.key)
        assert item is not None, f"{write} is gone; {context}"
        kept = parse(item["version"])
        assert kept >= write.version, f"{write} was lost to an older {item}; {context}"
        if kept == write.version:
            assert item["deleted"] == write.deleted, f"{write} vs {item}; {context}"
    for node in nodes:
        events = await node.replicated_changes()
        twice = [v for v, n in Counter((e["hlc"], e["origin"]) for e in events).items() if n > 1]
        assert not twice, f"{node.id} logged {len(twice)} versions twice; {context}"
