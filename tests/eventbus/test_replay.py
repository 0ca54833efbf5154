"""Replay: by seq range and by time range, with filters, into a handler or a route, with a
limit that can be continued, dry runs that touch nothing, and compacted ranges."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from changestream import ChangeStreamManager
from eventbus import (
    BusConfig,
    BusSetup,
    EventBus,
    EventRoute,
    InvalidReplay,
    ReplayRequest,
    UnknownHandler,
    UnknownRoute,
)
from kvdb import Compacted, Delete, EventType, Put, RetentionPolicy, Store, StoreConfig
from tests.conftest import StepClock, eventually
from tests.eventbus.conftest import Recorder

T0 = StepClock().now_ms  # the store's wall clock starts here


@pytest.fixture
def timed_store(tmp_path: Path, clock: StepClock) -> Any:
    retention = RetentionPolicy(
        max_events=8, hard_max_events=None, compaction_interval_ms=3_600_000
    )
    with Store(
        StoreConfig(data_dir=tmp_path / "d", node_id="n", retention=retention), clock=clock
    ) as store:
        yield store


@pytest.fixture
async def bus_with_history(
    timed_store: Store, clock: StepClock
) -> AsyncIterator[tuple[EventBus, Recorder, Recorder]]:
    """Seqs 1-4 at T0 (orders/1..4), 5-7 at T0+1s (users/5..7), 8-10 at T0+2s (orders/8,
    and deletes of orders/1, users/5). Two handlers that no route feeds live."""
    manager = ChangeStreamManager(timed_store)
    await manager.start()
    target, other = Recorder("target"), Recorder("other")
    bus = EventBus(timed_store, manager, BusConfig(checkpoint_interval_ms=0))
    await bus.start(
        BusSetup(
            handlers=(target, other),
            routes=(
                EventRoute(
                    "orders",
                    key_patterns=("orders/.*",),
                    handler_names=("target", "other"),
                    event_types=frozenset({EventType.DELETE}),
                ),
            ),
        )
    )
    await timed_store.batch([Put(f"orders/{i}", f"{i}".encode()) for i in range(1, 5)])
    clock.advance(1000)
    await timed_store.batch([Put(f"users/{i}", b"u") for i in range(5, 8)])
    clock.advance(1000)
    await timed_store.batch([Put("orders/8", b"8"), Delete("orders/1"), Delete("users/5")])
    # both caught up, checkpoints written (no retention pin)
    await eventually(
        lambda: all(
            (checkpoint := timed_store.get_checkpoint(f"stream/_bus/{n}")) is not None
            and checkpoint.seq >= 10
            for n in ("target", "other")
        )
    )
    target.calls.clear()
    other.calls.clear()  # only what replays deliver from here on
    target.attempts = other.attempts = 0
    yield bus, target, other
    await bus.stop()
    await manager.stop()


async def test_replay_a_seq_range_into_a_handler(bus_with_history: Any) -> None:
    bus, target, other = bus_with_history
    result = await bus.replay(
        ReplayRequest(handler="target", ignore_routes=True, from_seq=3, to_seq=6)
    )
    assert target.seqs == [3, 4, 5, 6] and other.seqs == []
    assert (result.scanned, result.selected, result.delivered) == (4, 4, {"target": 4})
    assert (result.from_seq, result.through_seq, result.next_seq) == (3, 6, None)


async def test_replay_with_filters(bus_with_history: Any) -> None:
    bus, target, _ = bus_with_history
    request = ReplayRequest(
        handler="target",
        ignore_routes=True,
        from_seq=1,
        key_patterns=("orders/.*",),
        event_types=frozenset({EventType.INSERT}),
    )
    result = await bus.replay(request)
    assert target.keys == ["orders/1", "orders/2", "orders/3", "orders/4", "orders/8"]
    assert result.scanned == 10 and result.selected == 5


async def test_replay_into_a_route_goes_to_its_handlers_through_its_filter(
    bus_with_history: Any,
) -> None:
    bus, target, other = bus_with_history
    result = await bus.replay(ReplayRequest(route="orders", from_seq=1))
    assert target.seqs == other.seqs == [9]  # the only DELETE of an order
    assert result.delivered == {"target": 1, "other": 1}


async def test_replay_a_time_range(bus_with_history: Any) -> None:
    bus, target, _ = bus_with_history
    await bus.replay(
        ReplayRequest(handler="target", ignore_routes=True, from_ts=T0 + 1000, to_ts=T0 + 2000)
    )
    assert target.keys == ["users/5", "users/6", "users/7"]
    target.calls.clear()
    await bus.replay(ReplayRequest(handler="target", ignore_routes=True, from_ts=T0 + 1500))
    assert target.seqs == [8, 9, 10]
    target.calls.clear()
    await bus.replay(ReplayRequest(handler="target", ignore_routes=True, to_ts=T0 + 1))
    assert target.seqs == [1, 2, 3, 4]


async def test_a_limited_replay_says_where_to_continue(bus_with_history: Any) -> None:
    bus, target, _ = bus_with_history
    request = ReplayRequest(
        handler="target", ignore_routes=True, from_seq=1, key_patterns=("users/.*",), limit=2
    )
    first = await bus.replay(request)
    assert target.seqs == [5, 6] and first.next_seq == 7 and first.through_seq == 6
    second = await bus.replay(
        ReplayRequest(
            handler="target",
            ignore_routes=True,
            from_seq=first.next_seq,
            key_patterns=("users/.*",),
            limit=2,
        )
    )
    assert target.seqs == [5, 6, 7, 10] and second.next_seq is None


async def test_a_dry_run_delivers_nothing(bus_with_history: Any) -> None:
    bus, target, other = bus_with_history
    result = await bus.replay(ReplayRequest(route="orders", from_seq=1, dry_run=True))
    assert target.calls == [] and other.calls == [] and target.attempts == 0
    assert result.to_dict()["would_deliver"] == {"target": 1, "other": 1}
    assert result.events == [
        {"seq": 9, "type": "DELETE", "key": "orders/1", "handlers": ["target", "other"]}
    ]
    assert "delivered" not in result.to_dict()


async def test_replay_failures_are_retried_and_dead_lettered(bus_with_history: Any) -> None:
    bus, target, _ = bus_with_history
    target.fail = {2}
    result = await bus.replay(
        ReplayRequest(handler="target", ignore_routes=True, from_seq=1, to_seq=3)
    )
    assert target.seqs == [1, 3] and result.dead_lettered == {"target": 1}
    assert bus.dead_letter("target", 2).attempts == 3


async def test_replaying_a_compacted_range_is_an_explicit_error(
    bus_with_history: Any, timed_store: Store
) -> None:
    bus, target, _ = bus_with_history
    await asyncio.to_thread(timed_store.compact_sync)  # keeps the last 8 events
    assert timed_store.oldest_seq() == 3
    with pytest.raises(Compacted) as info:
        await bus.replay(ReplayRequest(handler="target", ignore_routes=True, from_seq=1))
    assert info.value.oldest_seq == 3
    with pytest.raises(Compacted):
        await bus.replay(ReplayRequest(handler="target", ignore_routes=True, from_ts=T0))
    result = await bus.replay(ReplayRequest(handler="target", ignore_routes=True, to_seq=4))
    assert target.seqs == [3, 4] and result.from_seq == 3


async def test_bad_replay_requests(bus_with_history: Any) -> None:
    bus, _, _ = bus_with_history
    for fields, message in [
        ({"from_seq": 1}, "exactly one target"),
        ({"handler": "a", "route": "b", "from_seq": 1}, "exactly one target"),
        ({"handler": "target"}, "give a range"),
        ({"handler": "target", "from_seq": 1, "from_ts": 5}, "not both"),
        ({"handler": "target", "from_seq": 5, "to_seq": 2}, "ends .* before it starts"),
        ({"handler": "target", "from_seq": 0}, "from_seq must be >= 1"),
        ({"handler": "target", "from_seq": 1, "limit": 0}, "limit must be within"),
        ({"handler": "target", "from_seq": 1, "key_patterns": ["("]}, "not a valid RE2"),
        ({"route": "orders", "from_seq": 1, "ignore_routes": True}, "not a route"),
    ]:
        with pytest.raises(InvalidReplay, match=message):
            ReplayRequest(**fields)
    with pytest.raises(UnknownHandler):
        await bus.replay(ReplayRequest(handler="ghost", from_seq=1))
    with pytest.raises(UnknownRoute):
        await bus.replay(ReplayRequest(route="ghost", from_seq=1))


async def test_replay_into_a_handler_goes_through_its_routes(bus_with_history: Any) -> None:
    """A handler gets what its routes would send it (#18): here only deletes of orders."""
    bus, target, other = bus_with_history
    dry = await bus.replay(ReplayRequest(handler="target", from_seq=1, dry_run=True))
    assert [e["seq"] for e in dry.events] == [9] and dry.to_dict()["would_deliver"] == {"target": 1}
    result = await bus.replay(ReplayRequest(handler="target", from_seq=1))
    assert target.seqs == [9] and other.seqs == [] and result.selected == 1
    everything = await bus.replay(
        ReplayRequest(handler="target", from_seq=1, ignore_routes=True, dry_run=True)
    )
    assert everything.selected == 10


async def test_a_handler_no_route_feeds(bus_with_history: Any) -> None:
    bus, _, _ = bus_with_history
    await bus.remove_route("orders")
    with pytest.raises(InvalidReplay, match="ignore_routes: true"):
        await bus.replay(ReplayRequest(handler="target", from_seq=1))
    result = await bus.replay(ReplayRequest(handler="target", from_seq=1, ignore_routes=True))
    assert result.selected == 10
