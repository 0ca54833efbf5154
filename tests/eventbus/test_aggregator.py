"""Aggregates: counts and sums per key pattern and type over tumbling windows of commit time,
kept exactly across restarts (the windows commit with the checkpoint)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from changestream import ChangeStreamManager
from changestream.testing import ManualClock
from eventbus import AggregationSpec, BusSetup, EventBus, InvalidAggregation, UnknownAggregation
from kvdb import Delete, Put, Store, StoreConfig
from tests.conftest import StepClock, eventually

T0 = 1_700_000_040_000  # commit times start here, at the start of a minute
ORDERS = AggregationSpec(
    "orders",
    window_ms=60_000,
    key_patterns=("orders/.*", "orders/vip-.*"),
    sum_fields=("amount", "customer.age"),
    keep_windows=2,
)


@asynccontextmanager
async def running(
    tmp_path: Path, store_clock: StepClock, *specs: AggregationSpec
) -> AsyncIterator[EventBus]:
    with Store(StoreConfig(data_dir=tmp_path / "d", node_id="n"), clock=store_clock) as store:
        manager = ChangeStreamManager(store, clock=ManualClock(T0 + 90_000))
        await manager.start()
        bus = EventBus(store, manager)
        await bus.start(BusSetup(aggregations=specs))
        try:
            yield bus
        finally:
            await bus.stop()
            await manager.stop()


def groups(bus: EventBus, name: str = "orders") -> dict[tuple[int, str, str], Any]:
    (result,) = bus.aggregator.results(name)  # type: ignore[union-attr]
    return {
        (w["start"], g["key_pattern"], g["type"]): (g["count"], g["sums"], g["missing"])
        for w in result["windows"]
        for g in w["groups"]
    }


def caught_up(bus: EventBus) -> Callable[[], bool]:
    runner = bus._aggregator_runner
    assert runner is not None
    return lambda: runner.handled_through == bus.store.last_seq


@pytest.fixture(autouse=True)
def minute_aligned(clock: StepClock) -> None:
    assert T0 % 60_000 == 0
    clock.now_ms = T0


async def test_counts_and_sums_per_pattern_type_and_window(
    tmp_path: Path, clock: StepClock
) -> None:
    async with running(tmp_path, clock, ORDERS) as bus:
        store = bus.store
        await store.put("orders/1", b'{"amount": 10, "customer": {"age": 30}}')
        await store.put("orders/vip-2", b'{"amount": 2.5}')
        await store.put("orders/1", b'{"amount": "n/a"}')  # an UPDATE, not a number
        await store.put("users/1", b'{"amount": 1000}')  # no pattern matches
        await store.put("orders/bin", b"\xff")  # not JSON
        clock.advance(60_000)  # the next window
        await store.batch([Put("orders/3", b'{"amount": 1}'), Delete("orders/vip-2")])
        await eventually(caught_up(bus))
        assert groups(bus) == {
            (T0, "orders/.*", "INSERT"): (
                3,
                {"amount": 12.5, "customer.age": 30},
                {"amount": 1, "customer.age": 2},
            ),
            (T0, "orders/.*", "UPDATE"): (
                1,
                {"amount": 0, "customer.age": 0},
                {"amount": 1, "customer.age": 1},
            ),
            (T0, "orders/vip-.*", "INSERT"): (
                1,
                {"amount": 2.5, "customer.age": 0},
                {"amount": 0, "customer.age": 1},
            ),
            (T0 + 60_000, "orders/.*", "INSERT"): (
                1,
                {"amount": 1, "customer.age": 0},
                {"amount": 0, "customer.age": 1},
            ),
            # a DELETE sums what was deleted
            (T0 + 60_000, "orders/.*", "DELETE"): (
                1,
                {"amount": 2.5, "customer.age": 0},
                {"amount": 0, "customer.age": 1},
            ),
            (T0 + 60_000, "orders/vip-.*", "DELETE"): (
                1,
                {"amount": 2.5, "customer.age": 0},
                {"amount": 0, "customer.age": 1},
            ),
        }
        (result,) = bus.aggregator.results()  # type: ignore[union-attr]
        windows = result["windows"]
        assert [(w["start"], w["end"], w["closed"]) for w in windows] == [
            (T0, T0 + 60_000, True),  # the bus clock is at T0 + 90s
            (T0 + 60_000, T0 + 120_000, False),
        ]
        clock.advance(60_000)
        await store.put("orders/4", b"{}")
        await eventually(caught_up(bus))
        starts = {start for start, _, _ in groups(bus)}
        assert starts == {T0 + 60_000, T0 + 120_000}  # keep_windows=2: the oldest is dropped
        with pytest.raises(UnknownAggregation):
            bus.aggregator.results("nope")  # type: ignore[union-attr]


async def test_aggregates_are_exact_across_restarts(tmp_path: Path, clock: StepClock) -> None:
    async with running(tmp_path, clock, ORDERS) as bus:
        await bus.store.batch([Put(f"orders/{i}", b'{"amount": 2}') for i in range(10)])
        await eventually(caught_up(bus))
        before = groups(bus)
    assert before[(T0, "orders/.*", "INSERT")][0] == 10
    async with running(tmp_path, clock, ORDERS) as bus:
        assert groups(bus) == before  # loaded, not recounted
        await bus.store.put("orders/x", b'{"amount": 5}')
        await eventually(caught_up(bus))
        count, sums, _ = groups(bus)[(T0, "orders/.*", "INSERT")]
        assert (count, sums["amount"]) == (11, 25)
    changed = AggregationSpec("orders", window_ms=30_000, key_patterns=("orders/.*",))
    async with running(tmp_path, clock, changed) as bus:
        assert groups(bus) == {}  # a changed definition starts afresh
    async with running(tmp_path, clock) as bus:  # no aggregations: state and checkpoint go
        assert bus.aggregator is None
        assert bus.store.list_system_records("bus/agg/") == []
        assert bus.store.get_checkpoint("stream/_bus/_aggregates") is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"window_ms": 0}, "window_ms must be an integer >= 1"),
        ({"keep_windows": 0}, "keep_windows must be an integer >= 1"),
        ({"key_patterns": ()}, "give key_patterns"),
        ({"key_patterns": ("(",)}, "not a valid RE2"),
        ({"event_types": ("PUT",)}, "unknown event type"),
        ({"sum_fields": ("a..b",)}, "dotted path"),
        ({"sum_fields": "amount"}, "must be a list"),
        ({"name": "no spaces"}, "aggregation name"),
    ],
)
def test_bad_aggregations(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidAggregation, match=message):
        AggregationSpec(**{"name": "a", "window_ms": 1000, **fields})
