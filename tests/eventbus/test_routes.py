"""Routes: validation, matching by type and pattern, priority levels and ``final``, the shared
router, and route changes while the bus runs."""

from __future__ import annotations

from typing import Any

import pytest

from eventbus import (
    BusSetup,
    EventRoute,
    InvalidRoute,
    RouteExists,
    Router,
    RouteTable,
    UnknownRoute,
)
from kvdb import ChangeEvent, Delete, EventType, Put, Store
from tests.conftest import eventually
from tests.eventbus.conftest import Recorder


def event(seq: int, key: str, kind: EventType = EventType.INSERT) -> ChangeEvent:
    return ChangeEvent(seq, kind, key, None, b"v", 1 << 16, "n", seq)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "bad name"}, "route name 'bad name' must be"),
        ({"event_types": ["UPSERT"]}, "unknown event type 'UPSERT'"),
        ({"key_patterns": ["(orders"]}, "not a valid RE2 regular expression"),
        ({"key_patterns": ["(a)\\1"]}, "not a valid RE2"),
        ({"key_patterns": "orders/.*"}, "must be a list of patterns, not one string"),
        ({"handler_names": ()}, "names no handler"),
        ({"handler_names": ("a", "a")}, "names a handler twice"),
        ({"handler_names": ("a/b",)}, "handler name 'a/b' must be"),
        ({"priority": "high"}, "priority must be an integer"),
    ],
)
def test_bad_routes_are_rejected_with_the_reason(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRoute, match=message):
        EventRoute(**{"name": "r", "handler_names": ("h",), **fields})


def test_route_round_trips_through_its_dict_form() -> None:
    route = EventRoute("r", frozenset({EventType.DELETE}), ("a/.*",), ("h1", "h2"), 5, True)
    assert EventRoute.from_dict(route.to_dict()) == route
    with pytest.raises(InvalidRoute, match="unknown route field"):
        EventRoute.from_dict({**route.to_dict(), "handlers": ["x"]})


def test_matching_by_type_and_full_key_pattern() -> None:
    table = RouteTable(
        [
            EventRoute("orders", key_patterns=("orders/[0-9]+",), handler_names=("billing",)),
            EventRoute(
                "deletes", event_types=frozenset({EventType.DELETE}), handler_names=("audit",)
            ),
            EventRoute("everything", handler_names=("all",)),
        ]
    )
    assert table.targets(event(1, "orders/12")) == {"billing", "all"}
    assert table.targets(event(2, "orders/12/items")) == {"all"}  # a full match, not a prefix
    assert table.targets(event(3, "xorders/12")) == {"all"}
    assert table.targets(event(4, "orders/7", EventType.DELETE)) == {"billing", "audit", "all"}


def test_priority_levels_and_final_routes() -> None:
    table = RouteTable(
        [
            EventRoute("general", key_patterns=("orders/.*",), handler_names=("billing",)),
            EventRoute(
                "quarantine",
                key_patterns=("orders/test-.*",),
                handler_names=("q",),
                priority=100,
                final=True,
            ),
            EventRoute(
                "trace", key_patterns=("orders/test-.*",), handler_names=("tracer",), priority=100
            ),
            EventRoute("metrics", key_patterns=(".*",), handler_names=("metrics",), priority=50),
        ]
    )
    # A final route stops the lower levels, but not the routes of its own level.
    assert table.targets(event(1, "orders/test-1")) == {"q", "tracer"}
    assert [r.name for r in table.matching_routes(event(1, "orders/test-1"))] == [
        "quarantine",
        "trace",
    ]
    # Without a final match every level is consulted: fan-out.
    assert table.targets(event(2, "orders/9")) == {"metrics", "billing"}
    assert [r.name for r in table.routes] == ["quarantine", "trace", "metrics", "general"]


def test_router_matches_each_event_once_for_all_handlers() -> None:
    table = RouteTable([EventRoute("r", key_patterns=("a/.*",), handler_names=("h1", "h2"))])
    calls = []
    original = table.targets
    table.targets = lambda e: calls.append(e.seq) or original(e)  # type: ignore[method-assign]
    router = Router(table)
    events = [event(1, "a/1"), event(2, "b/1"), event(3, "a/2")]
    assert [e.seq for e in router.select("h1", events)] == [1, 3]
    assert [e.seq for e in router.select("h2", events)] == [1, 3]
    assert router.select("nobody", events) == []
    assert calls == [1, 2, 3]
    router.replace(RouteTable([EventRoute("r", key_patterns=("b/.*",), handler_names=("h1",))]))
    assert [e.seq for e in router.select("h1", events)] == [2]


async def test_bus_delivers_by_route_and_once_per_handler(make_bus: Any, store: Store) -> None:
    billing, audit, everything = Recorder("billing"), Recorder("audit"), Recorder("all")
    await make_bus(
        BusSetup(
            handlers=(billing, audit, everything),
            routes=(
                EventRoute("orders", key_patterns=("orders/.*",), handler_names=("billing", "all")),
                EventRoute(
                    "deletes",
                    event_types=frozenset({EventType.DELETE}),
                    handler_names=("audit", "all"),
                ),
            ),
        )
    )
    await store.batch([Put("orders/1", b"a"), Put("users/1", b"u"), Put("orders/2", b"b")])
    await store.batch([Delete("orders/1"), Delete("users/1")])
    await eventually(lambda: len(everything.seqs) == 4 and len(audit.seqs) == 2)
    assert billing.keys == ["orders/1", "orders/2", "orders/1"]
    assert audit.keys == ["orders/1", "users/1"]
    assert everything.seqs == [1, 3, 4, 5]  # seq 4 matched both routes: delivered once


async def test_routes_change_while_running(make_bus: Any, store: Store) -> None:
    first, second = Recorder("first"), Recorder("second")
    bus = await make_bus(
        BusSetup(
            handlers=(first, second),
            routes=(EventRoute("r", key_patterns=("a/.*",), handler_names=("first",)),),
        )
    )
    await store.put("a/1", b"1")
    await eventually(lambda: first.seqs == [1])
    with pytest.raises(RouteExists):
        await bus.add_route(EventRoute("r", handler_names=("second",)))
    with pytest.raises(
        InvalidRoute, match=r"unknown handler\(s\) ghost \(defined: first, second\)"
    ):
        await bus.add_route(EventRoute("r2", handler_names=("second", "ghost")))
    await bus.add_route(EventRoute("r2", key_patterns=("a/.*",), handler_names=("second",)))
    await bus.put_route(EventRoute("r", key_patterns=("b/.*",), handler_names=("first",)))
    await store.put("a/2", b"2")
    await store.put("b/1", b"3")
    await eventually(lambda: second.seqs == [2] and first.seqs == [1, 3])
    await bus.remove_route("r2")
    with pytest.raises(UnknownRoute):
        await bus.remove_route("r2")
    await store.put("a/3", b"4")
    await store.put("b/2", b"5")
    await eventually(lambda: first.seqs == [1, 3, 5])
    assert second.seqs == [2]
    assert [r.name for r in bus.routes()] == ["r"]
