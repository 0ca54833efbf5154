"""The ``SyncTarget`` contract (STYLE 9): the same checks against the fake, an in-process node,
a node over HTTP (its real ASGI app through httpx's ASGI transport), and the external targets
on the machine's JetStream, PostgreSQL and Redis: each keeps this node's checkpoint beside the
data and answers handshakes, duplicates, gaps and new incarnations the way a node does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api import Node, NodeSettings, Settings, create_app
from kvdb import RemoteBatch, RemoteItem
from kvdb.hlc import wall_clock_ms
from sync import (
    LocalSyncTarget,
    RemoteDBSyncTarget,
    ResyncNeeded,
    SyncConfig,
    SyncTarget,
    TargetConfig,
    TargetMismatch,
)
from sync.protocol import Hello
from sync.targets import EXTERNAL_KINDS, external_target
from sync.testing import FakeSyncTarget
from tests.sync.conftest import external_options

SOURCE, EPOCH = "a", "epoch-of-a"


@pytest.fixture(params=["fake", "local", "remote", "jetstream", "postgres", "redis"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SyncTarget]:
    if request.param == "fake":
        yield FakeSyncTarget("b")
        return
    if request.param in EXTERNAL_KINDS:
        options, cleanup = external_options(request.param)
        external = external_target(SyncConfig("contract"), TargetConfig(
            kind=request.param, name="b", options=options))  # fmt: skip
        yield external
        await external.close()
        await cleanup()
        return
    settings = Settings(node=NodeSettings(data_dir=tmp_path / "b", id="b"))
    async with Node(settings) as node:
        if request.param == "local":
            yield LocalSyncTarget(node.sync.receiver)
            return
        transport = httpx.ASGITransport(app=create_app(node))
        remote = RemoteDBSyncTarget(TargetConfig("b", ("http://b.localhost",)), transport=transport)
        yield remote
        await remote.close()


def item(seq: int, key: str, value: bytes = b"v", txn: int | None = None) -> RemoteItem:
    hlc = (wall_clock_ms() << 16) + seq
    return RemoteItem(seq, key, False, value, "text/plain", hlc, SOURCE, {SOURCE: hlc}, txn or seq)


def batch(prev: int, items: list[RemoteItem], last: int | None = None, *,
          epoch: str = EPOCH, target_epoch: str | None = None) -> RemoteBatch:  # fmt: skip
    last = last if last is not None else (items[-1].seq if items else prev)
    return RemoteBatch(SOURCE, epoch, prev, last, items, target_epoch)


async def test_a_new_source_starts_at_zero_and_batches_move_the_checkpoint(
    target: SyncTarget,
) -> None:
    welcome = await target.handshake(Hello(SOURCE, EPOCH, "b"))
    assert (welcome.node_id, welcome.checkpoint) == ("b", 0)
    result = await target.apply(batch(0, [item(1, "x"), item(2, "y")], target_epoch=welcome.epoch))
    assert (result.checkpoint, result.applied, result.duplicate) == (2, 2, False)
    again = await target.handshake(Hello(SOURCE, EPOCH, "b"))
    assert again.checkpoint == 2 and again.epoch == welcome.epoch


async def test_a_redelivered_batch_is_a_duplicate(target: SyncTarget) -> None:
    first = batch(0, [item(1, "x"), item(2, "y")])
    await target.apply(first)
    replay = await target.apply(first)
    assert replay.duplicate and replay.checkpoint == 2 and replay.applied == 0


async def test_a_skipped_stretch_moves_the_checkpoint(target: SyncTarget) -> None:
    result = await target.apply(batch(0, [], last=40))
    assert result.checkpoint == 40
    assert (await target.handshake(Hello(SOURCE, EPOCH, "b"))).checkpoint == 40


async def test_a_gap_needs_a_resync(target: SyncTarget) -> None:
    await target.apply(batch(0, [item(1, "x")]))
    with pytest.raises(ResyncNeeded):
        await target.apply(batch(5, [item(6, "y")]))


async def test_a_batch_for_another_incarnation_of_the_target_needs_a_resync(
    target: SyncTarget,
) -> None:
    with pytest.raises(ResyncNeeded):
        await target.apply(batch(0, [item(1, "x")], target_epoch="an-old-epoch"))


async def test_a_new_incarnation_of_the_source_starts_again(target: SyncTarget) -> None:
    await target.apply(batch(0, [item(1, "x"), item(2, "y")]))
    welcome = await target.handshake(Hello(SOURCE, "restored", "b"))
    assert welcome.checkpoint == 0
    with pytest.raises(ResyncNeeded):
        await target.apply(batch(2, [item(3, "z")], epoch="restored"))
    assert (await target.apply(batch(0, [item(1, "x")], epoch="restored"))).checkpoint == 1


async def test_the_wrong_node_behind_an_endpoint_is_refused(target: SyncTarget) -> None:
    with pytest.raises(TargetMismatch):
        await target.handshake(Hello(SOURCE, EPOCH, "c"))


async def test_a_snapshot_then_its_end_sets_the_checkpoint(target: SyncTarget) -> None:
    page = [item(0, "k1"), item(0, "k2")]
    snap = RemoteBatch(SOURCE, EPOCH, 0, 0, page, None, snapshot=True)
    assert (await target.apply(snap, "snapshot")).applied == 2
    end = await target.apply(batch(90, [], last=90), "snapshot_end")
    assert end.checkpoint == 90
    assert (await target.handshake(Hello(SOURCE, EPOCH, "b"))).checkpoint == 90
