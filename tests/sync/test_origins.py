"""The ``origins`` filter of streams, routes and pipelines: across a replicating pair, a
handler routed on ``[local]`` fires once per write, on the node where it was made."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from api import Node, NodeSettings, Settings
from changestream import EventFilter, FunctionProcessor, InvalidStreamConfig, StreamConfig
from compute import Count, SqlError, StreamPipeline, Tumbling
from eventbus import EventRoute, FunctionEventHandler
from kvdb import ChangeEvent, EventType
from sync import BidirectionalSyncManager
from tests.conftest import eventually
from tests.sync.test_pairs import converged


def event(origin: str, source: str | None) -> ChangeEvent:
    return ChangeEvent(1, EventType.INSERT, "k", None, b"v", 1 << 16, origin, 1, None, source)


def test_origin_filters() -> None:
    local, replicated = event("a", None), event("b", "b")
    assert EventFilter(origins=["local"]).matches(local)
    assert not EventFilter(origins=["local"]).matches(replicated)
    assert EventFilter(origins=["remote"]).matches(replicated)
    assert EventFilter(origins=["b"]).matches(replicated)
    assert not EventFilter(origins=["c"]).matches(replicated)
    assert EventFilter(origins=["local", "remote"]).matches_everything
    with pytest.raises(InvalidStreamConfig, match="origins"):
        StreamConfig("s", origins=("no spaces allowed",))


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    settings = [Settings(node=NodeSettings(data_dir=tmp_path / n, id=n)) for n in "ab"]
    async with (
        Node(settings[0]) as a,
        Node(settings[1]) as b,
        BidirectionalSyncManager(a.sync, b.sync),
    ):
        yield a, b


async def test_a_local_route_fires_once_across_the_pair(pair: tuple[Node, Node]) -> None:
    a, b = pair
    fired: dict[str, list[str]] = {"a": [], "b": [], "a-all": []}

    def recorder(name: str):  # type: ignore[no-untyped-def]
        async def record(e: ChangeEvent) -> None:
            fired[name].append(e.key)

        return record

    for node, name in ((a, "a"), (b, "b")):
        await node.bus.add_handler(FunctionEventHandler("alert", recorder(name)))
        await node.bus.add_route(
            EventRoute(
                "alerts", key_patterns=("orders/.*",), handler_names=("alert",), origins=("local",)
            )
        )
    await a.bus.add_handler(FunctionEventHandler("all", recorder("a-all")))
    await a.bus.add_route(EventRoute("everything", handler_names=("all",)))
    await a.store.put("orders/1", b"x")
    await b.store.put("orders/2", b"y")
    await converged([a, b])
    await eventually(lambda: len(fired["a-all"]) == 2)
    assert fired["a"] == ["orders/1"] and fired["b"] == ["orders/2"]
    assert sorted(fired["a-all"]) == ["orders/1", "orders/2"]


async def test_streams_and_pipelines_select_by_origin(pair: tuple[Node, Node]) -> None:
    a, b = pair
    seen: list[str] = []

    async def keep(batch: Sequence[ChangeEvent]) -> None:
        seen.extend(e.key for e in batch)

    await a.streams.create(
        StreamConfig("remote-only", origins=("remote",), start_from="earliest"),
        processors=[FunctionProcessor("p", keep)],
    )
    pipeline = (
        StreamPipeline("mine", ["n/.*"], origins=["local"])
        .window(Tumbling(86_400_000))
        .aggregate(n=Count())
    )
    processor = await a.compute.register(pipeline)
    await a.store.put("n/1", b"{}")
    await b.store.put("n/2", b"{}")
    await b.store.put("n/3", b"{}")
    await converged([a, b])
    await eventually(lambda: sorted(seen) == ["n/2", "n/3"])
    await eventually(lambda: [row["n"] for row in processor.results().rows] == [1])


async def test_sql_streams_take_origins(pair: tuple[Node, Node]) -> None:
    a, _ = pair
    await a.compute.sql.execute(
        "CREATE STREAM mine (v INT) WITH (key_pattern = 'v/.*', origins = 'local, b')"
    )
    with pytest.raises(SqlError, match="origins"):
        await a.compute.sql.execute(
            "CREATE STREAM bad (v INT) WITH (key_pattern = 'v/.*', origins = 'no way')"
        )
