"""Declared handlers, routes and aggregations (``eventbus/declare.py``): stored with their owner,
orphaned when dropped (receiving, routing and counting nothing, keeping checkpoints and
windows), adopted back from their checkpoint, pruned, and never taken from the API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from changestream import ChangeStreamManager, Orphaned, Ownership, OwnershipConflict
from eventbus import (
    AggregationSpec,
    BusSetup,
    EventBus,
    EventRoute,
    HandlerInUse,
    HandlerSpec,
    LogTarget,
    UnknownAggregation,
)
from kvdb import Store, StoreConfig
from tests.conftest import eventually


@asynccontextmanager
async def started(
    config: StoreConfig, declared: BusSetup | None = None, *, prune: bool = False
) -> AsyncIterator[EventBus]:
    """A bus over the store, after declaring ``declared`` (None: no declaration at all)."""
    with Store(config) as store:
        manager = ChangeStreamManager(store)
        await manager.start()
        bus = EventBus(store, manager)
        try:
            if declared is not None:
                await bus.declare(declared, owner="config", prune=prune)
            await bus.start()
            yield bus
        finally:
            await bus.stop()
            await manager.stop()


def log_handler(tmp_path: Path, name: str) -> HandlerSpec:
    return HandlerSpec(name, LogTarget(str(tmp_path / f"{name}.jsonl")))


def keys(tmp_path: Path, name: str) -> list[str]:
    path = tmp_path / f"{name}.jsonl"
    return (
        [json.loads(line)["key"] for line in path.read_text().splitlines()] if path.exists() else []
    )


def setup(tmp_path: Path, *names: str, **extra: Any) -> BusSetup:
    return BusSetup(
        handlers=tuple(log_handler(tmp_path, n) for n in names),
        routes=tuple(EventRoute(f"to-{n}", handler_names=(n,)) for n in names),
        **extra,
    )


async def test_a_dropped_handler_is_orphaned_and_resumes_when_declared_again(
    store_config: StoreConfig, tmp_path: Path
) -> None:
    async with started(store_config, setup(tmp_path, "a", "b")) as bus:
        assert bus.source("a") == "config" and bus.ownership("handler", "a").owner == "config"
        await bus.store.put("k1", b"v")
        await eventually(lambda: keys(tmp_path, "a") == keys(tmp_path, "b") == ["k1"])
        await eventually(lambda: bus.stats()["a"].handled_through == 1)

    async with started(store_config, setup(tmp_path, "b")) as bus:
        assert bus.ownership("handler", "a") == Ownership("config", orphaned=True)
        assert bus.ownership("route", "to-a").orphaned and list(bus.orphaned.routes()) == ["to-a"]
        assert [h.name for h in bus.handlers()] == ["b"] and bus.stats()["a"].state == "orphaned"
        assert bus.describe("a")["orphaned"] is True and bus.describe("a")["kind"] == "log"
        assert {o.name: dict(o.pins) for o in bus.orphans()} == {
            "a": {"stream/_bus/a": 1},
            "to-a": {},
        }
        await bus.store.put("k2", b"v")
        await eventually(lambda: keys(tmp_path, "b") == ["k1", "k2"])
        assert keys(tmp_path, "a") == ["k1"] and bus.stats()["a"].lag_events == 1
        with pytest.raises(Orphaned):
            await bus.add_handler(log_handler(tmp_path, "a"), persist=True)
        with pytest.raises(OwnershipConflict, match="declared by 'config'"):
            await bus.put_handler(log_handler(tmp_path, "b"), persist=True)

    async with started(store_config, setup(tmp_path, "a", "b")) as bus:  # adopted back
        assert not bus.ownership("handler", "a").orphaned
        await eventually(lambda: keys(tmp_path, "a") == ["k1", "k2"])  # nothing missed

    async with started(store_config) as bus:  # no declaration: nothing changes
        assert [h.name for h in bus.handlers()] == ["a", "b"] and bus.orphans() == ()


async def test_prune_removes_orphans_and_releases_their_checkpoints(
    store_config: StoreConfig, tmp_path: Path
) -> None:
    async with started(store_config, setup(tmp_path, "a", "b", "c")) as bus:
        await bus.add_route(EventRoute("api-route", handler_names=("c",)), persist=True)
        await bus.store.put("k1", b"v")
        await eventually(lambda: all(bus.stats()[n].handled_through == 1 for n in "abc"))
    async with started(store_config, setup(tmp_path)) as bus:
        assert {o.name for o in bus.orphans()} == {"a", "b", "c", "to-a", "to-b", "to-c"}
        with pytest.raises(HandlerInUse):
            await bus.remove_handler("a")  # its orphaned route still names it
        await bus.remove_route("to-a")
        await bus.remove_handler("a")  # an explicit delete releases its checkpoint
        assert bus.store.get_checkpoint("stream/_bus/a") is None
    async with started(store_config, setup(tmp_path), prune=True) as bus:
        # c stays: a route made through the API names it
        assert {o.name for o in bus.orphans()} == {"c"}
        assert bus.store.get_checkpoint("stream/_bus/b") is None
        assert bus.store.get_checkpoint("stream/_bus/c") is not None
        assert [r.name for r in bus.routes()] == ["api-route"]


async def test_a_declaration_never_takes_what_the_api_made(
    store_config: StoreConfig, tmp_path: Path
) -> None:
    async with started(store_config, setup(tmp_path, "a")) as bus:
        await bus.add_handler(log_handler(tmp_path, "api"), persist=True)
    with pytest.raises(OwnershipConflict, match="handler 'api' was made through the API"):
        async with started(store_config, setup(tmp_path, "api")):
            pass
    async with started(store_config) as bus:  # nothing was applied: "a" is not orphaned
        assert bus.orphans() == () and bus.source("api") == "stored"


def counts(bus: EventBus) -> dict[str, int]:
    assert bus.aggregator is not None
    return {
        a["name"]: sum(g["count"] for w in a["windows"] for g in w["groups"])
        for a in bus.aggregator.results()
    }


async def test_an_orphaned_aggregation_keeps_its_windows_and_counts_nothing(
    store_config: StoreConfig,
) -> None:
    both = BusSetup(aggregations=(AggregationSpec("x", 60_000), AggregationSpec("y", 60_000)))
    only_x = BusSetup(aggregations=(AggregationSpec("x", 60_000),))
    async with started(store_config, both) as bus:
        await bus.store.put("k1", b"v")
        await eventually(lambda: counts(bus) == {"x": 1, "y": 1})
    async with started(store_config, only_x) as bus:
        assert bus.aggregator is not None and bus.aggregator.orphans == ["y"]
        await bus.store.put("k2", b"v")
        await eventually(lambda: counts(bus) == {"x": 2, "y": 1})
        assert bus.aggregator.results("y")[0]["orphaned"] is True
    async with started(store_config, BusSetup()) as bus:  # only orphans: nothing counts
        assert bus.aggregator is not None and not bus.aggregator.counting
        await bus.store.put("k3", b"v")
        assert counts(bus) == {"x": 2, "y": 1}
        pins = {o.name: dict(o.pins) for o in bus.orphans()}
        assert pins == {"x": {"stream/_bus/_aggregates": 2}, "y": {"stream/_bus/_aggregates": 2}}
        with pytest.raises(UnknownAggregation):
            await bus.remove_aggregation("nope")
        await bus.remove_aggregation("y")
        assert counts(bus) == {"x": 2}
    async with started(store_config, only_x) as bus:  # adopted: counts what it missed
        await eventually(lambda: counts(bus) == {"x": 3})
        with pytest.raises(OwnershipConflict):
            await bus.remove_aggregation("x")
    async with started(store_config, BusSetup(), prune=True) as bus:
        assert bus.aggregator is None and bus.orphans() == ()
        assert bus.store.list_system_records("bus/agg/") == []
        assert bus.store.get_checkpoint("stream/_bus/_aggregates") is None


async def test_aggregations_stored_before_owners_are_claimed(store_config: StoreConfig) -> None:
    """An earlier version stored the file's aggregations without an owner."""
    spec = AggregationSpec("x", 60_000)
    with Store(store_config) as store:
        await store.put_system_record("bus/agg/x/spec", json.dumps(spec.to_dict()).encode())
        await store.put_system_record("bus/agg/x/w/00000000000000000000", b'[[0, "INSERT", 4]]')
    async with started(store_config, BusSetup(aggregations=(spec,))) as bus:
        assert counts(bus) == {"x": 4}  # windows kept
        assert bus.aggregator is not None and bus.aggregator.ownership["x"].owner == "config"
