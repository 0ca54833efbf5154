"""Two and three embedded nodes replicating in process (``BidirectionalSyncManager`` and
``LocalSyncTarget``): convergence, no echoes, conflicts recorded alike on both sides."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from api import Node, NodeSettings, Settings
from sync import BidirectionalSyncManager, ConflictPolicy, PolicyRule, SyncConfig
from sync.local import LocalSyncTarget
from tests.conftest import eventually


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[list[Node]]:
    async with AsyncExitStack() as stack:
        started = []
        for name in ("a", "b", "c"):
            settings = Settings(node=NodeSettings(data_dir=tmp_path / name, id=name))
            started.append(await stack.enter_async_context(Node(settings)))
        yield started


def state(node: Node) -> list[tuple[str, bool, str]]:
    items: list[tuple[str, bool, str]] = []
    after = None
    while True:
        page, after = node.store.replica.scan_versions(after, 1000)
        items.extend((i.key, i.deleted, str(i.version)) for i in page)
        if after is None:
            return items


async def converged(nodes: Sequence[Node], timeout: float = 10.0) -> None:
    def same_state_nothing_in_flight() -> bool:
        states = [state(node) for node in nodes]
        lagging = any(
            target["lag_events"]
            for node in nodes
            for processor in node.sync.status()["processors"]
            for target in processor["targets"]
        )
        return not lagging and all(s == states[0] for s in states)

    await eventually(same_state_nothing_in_flight, timeout, interval=0.02)


async def test_a_pair_converges_with_one_log_entry_per_write(nodes: list[Node]) -> None:
    a, b, _ = nodes
    async with BidirectionalSyncManager(a.sync, b.sync, batch_size=50):
        for i in range(300):
            await a.store.put(f"a/{i}", b"x")
            await b.store.put(f"b/{i}", b"y")
            if i % 7 == 0:
                await a.store.delete(f"a/{i}")
        await converged([a, b])
        assert a.store.last_seq == b.store.last_seq == 600 + 43
        before = (a.store.last_seq, b.store.last_seq)
        await asyncio.sleep(0.3)  # nothing echoes back and forth
        assert (a.store.last_seq, b.store.last_seq) == before
        entry_a, entry_b = a.store.get("b/5"), b.store.get("b/5")
        assert entry_a is not None and entry_a == entry_b  # same value and version


async def test_a_partition_conflict_has_the_same_winner_and_id_on_both(
    nodes: list[Node],
) -> None:
    a, b, _ = nodes
    policies = (PolicyRule(("carts/.*",), ConflictPolicy.DELETE_WINS),)
    async with BidirectionalSyncManager(a.sync, b.sync, policies=policies):
        await a.store.put("doc", b"0")
        await a.store.put("carts/1", b"0")
        await converged([a, b])
        for node in (a, b):
            node.sync.list()[0].pause()
        await a.store.put("doc", b"from a")
        await b.store.put("doc", b"from b")
        await a.store.delete("carts/1")
        await b.store.put("carts/1", b"more")
        for node in (a, b):
            node.sync.list()[0].resume()
        await converged([a, b])
        assert a.store.get("carts/1") is None and b.store.get("carts/1") is None
        doc_a, doc_b = a.store.get("doc"), b.store.get("doc")
        assert doc_a is not None and doc_a == doc_b
        records_a = {r.document["id"]: r.document for r in a.sync.conflicts()}
        records_b = {r.document["id"]: r.document for r in b.sync.conflicts()}
        assert records_a == records_b and len(records_a) == 2
        policies_seen = sorted(doc["policy"] for doc in records_a.values())
        assert policies_seen == ["delete_wins", "lww"]
        by_key = {doc["key"]: doc for doc in records_a.values()}
        assert by_key["doc"]["winner"] == str(doc_a.version)


async def test_a_chain_relays_through_the_middle_with_one_entry_per_node(nodes: list[Node]) -> None:
    a, b, c = nodes

    async def link(src: Node, dst: Node, forward: str) -> None:
        config = SyncConfig(
            f"to-{dst.store.node_id}",
            targets=(),
            forward=forward,  # type: ignore[arg-type]
        )
        await src.sync.attach(config, {dst.store.node_id: LocalSyncTarget(dst.sync.receiver)})

    for src, dst in ((a, b), (b, c), (c, b), (b, a)):  # a - b - c, relaying through b
        await link(src, dst, "all")
    await a.store.put("from-a", b"1")
    await c.store.put("from-c", b"2")
    await converged([a, b, c])
    assert a.store.last_seq == b.store.last_seq == c.store.last_seq == 2
    for node in (a, b, c):
        assert [e.key for e in node.store.read_changes(0)] in (
            ["from-a", "from-c"],
            ["from-c", "from-a"],
        )
