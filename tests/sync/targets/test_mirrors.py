"""Every external target, driven by a node's ``TargetChannel``: what arrives equals the node's
versioned scan (tombstones included), a fresh target is made consistent by a snapshot, and a
target that has a batch the node did not record as sent is not sent it again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from api import Node, NodeSettings, Settings
from changestream import Batch
from kvdb import Delete, Put, RemoteBatch, RemoteItem, Store
from sync import (
    ConflictPolicy,
    ConflictResolver,
    Forward,
    PolicyRule,
    SyncConfig,
    TargetChannel,
    TargetConfig,
    TargetState,
)
from sync.targets import external_target
from sync.targets.options import TargetOptions
from tests.services import event_seqs, scan_all, stream_messages, target_state, versioned_state
from tests.sync.conftest import external
from tests.sync.test_channel import RecordingClock

KEYS = ["users/1", "users/2", "a.b c", "ünï/cødé", "x\x00y", "/lead", "trail/", "a//b", "%41", "*>"]


@pytest.fixture(params=["jetstream", "postgres", "redis"], name="external")
async def external_target_options(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[str, TargetOptions]]:
    async with external(request.param) as options:
        yield request.param, options


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with Node(Settings(node=NodeSettings(data_dir=tmp_path / "a", id="a"))) as started:
        yield started


async def caught_up(node: Node, timeout: float = 30.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            targets = [t for p in node.sync.status()["processors"] for t in p["targets"]]
            if targets and all(t["lag_events"] == 0 and t["state"] == "live" for t in targets):
                return targets[0]
            await asyncio.sleep(0.02)


async def write_a_mix(node: Node) -> None:
    store = node.store
    for index, key in enumerate(KEYS):
        await store.put(key, f"v{index}".encode(), content_type="text/plain")
    await store.put("bin", b"\xff\x00\xfe")
    await store.put("doc", b'{"n": 1}', content_type="application/json")
    await store.batch([Put(f"batch/{i}", b"b") for i in range(300)] + [Delete("users/2")])
    await store.put("users/1", b"again")
    await store.delete("a.b c")
    await store.batch([Delete(f"batch/{i}") for i in range(0, 300, 3)])


def channel_for(store: Store, target: Any, forward: Forward = Forward.OWN) -> TargetChannel:
    config = SyncConfig("out", targets=(), batch_size=100, forward=forward)
    return TargetChannel(config, target, store, RecordingClock())  # type: ignore[arg-type]


async def test_a_node_s_changes_arrive_and_the_target_equals_its_scan(
    node: Node, external: tuple[str, TargetOptions]
) -> None:
    kind, options = external
    target = TargetConfig(kind=kind, name="mirror", options=options)
    await node.sync.create(SyncConfig("out", targets=(target,), batch_size=100))
    await write_a_mix(node)
    status = await caught_up(node)
    assert status["kind"] == kind and status["node_id"] == "mirror"
    assert status["endpoint"] and status["last_error"] is None
    assert await target_state(kind, options, "a", "mirror") == versioned_state(scan_all(node.store))
    if kind == "jetstream":  # every event exactly once, in order, no gap
        messages = await stream_messages(
            options.servers[0], options.stream_for("a"), options.node_subject("a") + ".>"
        )
        assert event_seqs(messages) == list(range(1, node.store.last_seq + 1))


async def test_a_fresh_target_behind_the_compacted_log_gets_a_snapshot(
    store: Store, external: tuple[str, TargetOptions]
) -> None:
    kind, options = external
    target = external_target(SyncConfig("out"), TargetConfig(kind=kind, name="m", options=options))
    await store.batch([Put(f"k{i}", b"v") for i in range(450)])  # pages of 100, several at once
    await store.batch([Delete("k3")])
    store.compact_sync()
    ch = channel_for(store, target)
    events = store.read_changes(store.oldest_seq() - 1, limit=100)
    await ch.process_batch(Batch(events, events[-1].seq, True))
    await store.put("after", b"1")
    await ch.process_batch(Batch(store.read_changes(store.last_seq - 1), store.last_seq, True))
    assert ch.stats["snapshots"] == 1 and ch.state is TargetState.LIVE
    assert await target_state(kind, options, "a", "m") == versioned_state(scan_all(store))
    await target.close()


async def test_a_conflict_won_by_the_lower_version_reaches_the_target(
    store: Store, external: tuple[str, TargetOptions]
) -> None:
    """With delete_wins / update_wins the node may keep the lower of two concurrent versions;
    its event has seen the other one, so the target follows the node, not the greater hlc."""
    kind, options = external
    policies = (
        PolicyRule(("dw/.*",), ConflictPolicy.DELETE_WINS),
        PolicyRule(("uw/.*",), ConflictPolicy.UPDATE_WINS),
    )
    resolver = ConflictResolver(SyncConfig("s", policies=policies))
    mine = await store.put("dw/k", b"mine")  # then b's concurrent, older delete wins
    await store.put("uw/k", b"first")
    gone = await store.delete("uw/k")  # then b's concurrent, older update wins
    assert mine.version is not None and gone.version is not None
    older = [
        RemoteItem(1, "dw/k", True, None, None, mine.version.hlc - 1, "b",
                   {"b": mine.version.hlc - 1}, 1),
        RemoteItem(2, "uw/k", False, b"theirs", "text/plain", gone.version.hlc - 1, "b",
                   {"b": gone.version.hlc - 1}, 2),
    ]  # fmt: skip
    result = await store.replica.apply(
        RemoteBatch("b", "e-b", 0, 2, older), resolver=resolver, max_clock_skew_ms=5000
    )
    assert result.conflicts == 2
    theirs = store.get("uw/k")
    assert store.get("dw/k") is None and theirs is not None and theirs.value == b"theirs"
    target = external_target(SyncConfig("out"), TargetConfig(kind=kind, name="m", options=options))
    events = store.read_changes(0, limit=100)
    mirror = channel_for(store, target, Forward.ALL)  # b's writes too: a whole mirror
    await mirror.process_batch(Batch(events, events[-1].seq, True))
    assert await target_state(kind, options, "a", "m") == versioned_state(scan_all(store))
    await target.close()


async def test_what_a_target_stored_is_not_sent_again_after_a_crash(
    store: Store, external: tuple[str, TargetOptions]
) -> None:
    """The node crashed after the target stored a batch but before recording it: a new
    channel (and target connection) asks the target, which knows."""
    kind, options = external
    config = TargetConfig(kind=kind, name="m", options=options)
    await store.batch([Put(f"k{i}", b"v") for i in range(50)])
    everything = Batch(store.read_changes(0, limit=100), store.last_seq, True)
    first = external_target(SyncConfig("out"), config)
    await channel_for(store, first).process_batch(everything)
    await first.close()
    second = external_target(SyncConfig("out"), config)
    again = channel_for(store, second)
    await again.process_batch(everything)
    assert again.remote == store.last_seq and again.stats["sent"] == 0
    await second.close()
