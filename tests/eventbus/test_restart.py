"""Durability across restarts: per-handler checkpoints, unflushed batches, stored
definitions, and all-or-nothing start-up."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from changestream import ChangeStreamManager
from eventbus import (
    BaseEventHandler,
    BusSetup,
    EventBus,
    EventRoute,
    HandlerInUse,
    HandlerSpec,
    InvalidRoute,
    LogTarget,
    UnknownHandler,
)
from kvdb import Put, Store, StoreConfig
from tests.conftest import eventually
from tests.eventbus.conftest import Recorder


@asynccontextmanager
async def running(config: StoreConfig, setup: BusSetup | None = None) -> AsyncIterator[EventBus]:
    with Store(config) as store:
        manager = ChangeStreamManager(store)
        await manager.start()
        bus = EventBus(store, manager)
        try:
            await bus.start(setup)
            yield bus
        finally:
            await bus.stop()
            await manager.stop()


def setup_for(*handlers: BaseEventHandler) -> BusSetup:
    """Handler ``only-a`` gets keys ``a/...``; the others get everything."""
    names = [h.name for h in handlers]
    routes = [EventRoute("all", handler_names=tuple(n for n in names if n != "only-a"))]
    if "only-a" in names:
        routes.append(EventRoute("a", key_patterns=("a/.*",), handler_names=("only-a",)))
    return BusSetup(handlers=handlers, routes=tuple(routes))


async def test_each_handler_resumes_after_its_own_checkpoint(store_config: StoreConfig) -> None:
    only_a, slow = Recorder("only-a"), Recorder("slow")
    async with running(store_config, setup_for(only_a, slow)) as bus:
        await bus.store.batch([Put(f"a/{i}", b"v") for i in range(5)])
        await eventually(lambda: len(only_a.seqs) == 5 and len(slow.seqs) == 5)
        slow.gate.clear()  # stalls from here on
        await bus.store.batch([Put(f"b/{i}", b"v") for i in range(5)])
        await eventually(lambda: bus.stats()["only-a"].handled_through == 10)
    assert slow.seqs == [1, 2, 3, 4, 5]

    with Store(store_config) as store:  # written while the bus is down
        await store.batch([Put("a/late", b"v"), Put("c/late", b"v")])

    only_a, slow = Recorder("only-a"), Recorder("slow")
    async with running(store_config, setup_for(only_a, slow)) as bus:
        await eventually(lambda: len(slow.seqs) == 7 and len(only_a.seqs) == 1)
        assert only_a.seqs == [11]  # exactly after its checkpoint (10)
        assert slow.seqs == [6, 7, 8, 9, 10, 11, 12]  # after its own (5)
        assert bus.stats()["slow"].lag_events == 0


async def test_an_unflushed_batch_comes_again_after_a_restart(store_config: StoreConfig) -> None:
    batches = Recorder("batches", batch_size=10, flush_interval_ms=60_000)
    async with running(store_config, setup_for(batches)) as bus:
        await bus.store.batch([Put(f"k{i}", b"v") for i in range(13)])
        await eventually(lambda: batches.seqs == list(range(1, 11)))
        await eventually(lambda: bus.stats()["batches"].pending == 3)
    # the partial batch (seq 11..13) was not flushed on stop: the checkpoint stays before it
    batches = Recorder("batches", batch_size=3)
    async with running(store_config, setup_for(batches)):
        await eventually(lambda: batches.seqs == [11, 12, 13])


async def test_stored_definitions_survive_a_restart(
    store_config: StoreConfig, tmp_path: Path
) -> None:
    log = tmp_path / "audit.jsonl"
    spec = HandlerSpec("audit", LogTarget(str(log)))
    async with running(store_config) as bus:
        await bus.add_handler(spec, persist=True)
        await bus.add_route(EventRoute("deletes", handler_names=("audit",)), persist=True)
        await bus.store.put("x", b"1")
        await eventually(lambda: bus.stats()["audit"].handled_through == 1)
        assert log.read_text().count("\n") == 1

    async with running(store_config) as bus:  # nothing declared: restored from LMDB
        assert [r.name for r in bus.routes()] == ["deletes"]
        assert bus.source("audit") == "stored" and bus.route_is_stored("deletes")
        await bus.store.put("y", b"2")
        await eventually(lambda: log.read_text().count("\n") == 2)
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        assert [(e["seq"], e["key"]) for e in lines] == [(1, "x"), (2, "y")]
        with pytest.raises(HandlerInUse, match="still named by route"):
            await bus.remove_handler("audit")
        await bus.remove_route("deletes")
        await bus.remove_handler("audit")

    async with running(store_config) as bus:
        assert bus.handlers() == [] and bus.routes() == []
        assert bus.store.list_system_records("bus/handler/") == []
        assert not [c for c in bus.store.list_checkpoints() if c.name.endswith("/audit")]


async def test_a_declaration_replaces_a_stored_definition(
    store_config: StoreConfig, tmp_path: Path
) -> None:
    async with running(store_config) as bus:
        await bus.add_handler(
            HandlerSpec("audit", LogTarget(str(tmp_path / "old.log"))), persist=True
        )
    declared = HandlerSpec("audit", LogTarget(str(tmp_path / "new.log")))
    async with running(store_config, BusSetup(handlers=(declared,))) as bus:
        assert bus.source("audit") == "config"
        assert bus.describe("audit")["path"] == str(tmp_path / "new.log")
        assert bus.store.list_system_records("bus/handler/") == []  # the stale record is gone


async def test_a_stored_route_whose_handler_is_gone_stops_the_start(
    store_config: StoreConfig, tmp_path: Path
) -> None:
    declared = HandlerSpec("audit", LogTarget(str(tmp_path / "a.log")))
    async with running(store_config, BusSetup(handlers=(declared,))) as bus:
        await bus.add_route(EventRoute("r", handler_names=("audit",)), persist=True)
    with Store(store_config) as store:
        manager = ChangeStreamManager(store)
        await manager.start()
        bus = EventBus(store, manager)
        with pytest.raises(InvalidRoute, match="define the handler again in the configuration"):
            await bus.start()
        assert not bus.started
        await manager.stop()


async def test_a_failing_start_leaves_nothing_running(store_config: StoreConfig) -> None:
    class Broken(Recorder):
        async def start(self) -> None:
            raise OSError("cannot open the thing")

    good = Recorder("good")
    with Store(store_config) as store:
        manager = ChangeStreamManager(store)
        await manager.start()
        bus = EventBus(store, manager)
        with pytest.raises(OSError, match="cannot open"):
            await bus.start(BusSetup(handlers=(good, Broken("broken"))))
        assert not bus.started and all(not s.consumers for s in manager.list())
        await manager.stop()


async def test_removing_a_handler_releases_its_checkpoint(store_config: StoreConfig) -> None:
    async with running(store_config, setup_for(Recorder("leftover"))) as bus:
        await bus.store.put("k", b"v")
        await eventually(lambda: bus.stats()["leftover"].handled_through == 1)
    async with running(store_config) as bus:  # the handler is no longer declared
        assert bus.store.get_checkpoint("stream/_bus/leftover") is not None
        await bus.remove_handler("leftover")  # releases the retention it pinned
        assert bus.store.get_checkpoint("stream/_bus/leftover") is None
        with pytest.raises(UnknownHandler):
            await bus.remove_handler("leftover")
