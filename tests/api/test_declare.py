"""One way to declare from the YAML file, for streams, the event bus and pipelines: what the file
declares is created or updated; what it drops is orphaned (stopped, kept, listed, warned about
with what it pins) until deleted or pruned; API-made objects are never the file's; and a start
without a file changes nothing."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api import Node, create_app, load_settings
from api.errors import ConfigError
from compute import Count, StreamPipeline, Tumbling
from kvdb import Store
from tests.api.conftest import LocalClient
from tests.conftest import eventually_sync


def clicks_per_page() -> StreamPipeline:
    """A builder the YAML below names: tests.api.test_declare:clicks_per_page."""
    return (
        StreamPipeline("clicks_per_page", ["clicks/.*"], event_time="at")
        .key_by("page")
        .window(Tumbling(60_000))
        .aggregate(n=Count())
    )


class NodeFiles:
    """A data directory and the YAML file that configures it."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.path = tmp_path / "kvdb.yaml"
        self.data = tmp_path / "data"

    def write(self, body: str, *, prune: bool = False) -> None:
        node = (
            f'node: {{data_dir: "{self.data}", '
            "retention: {max_events: 1, compaction_interval: 1h}}\n"
        )
        self.path.write_text(node + ("prune: true\n" if prune else "") + body)

    @contextmanager
    def serve(self, *, with_file: bool = True) -> Iterator[TestClient]:
        if with_file:
            settings = load_settings(self.path)
        else:  # as `kvdb serve --data-dir DIR`, with no --config
            settings = load_settings(overrides={"node": {"data_dir": str(self.data)}})
        with LocalClient(create_app(settings)) as client:
            yield client


def store_of(client: TestClient) -> Store:
    return client.app.node.store  # type: ignore[attr-defined,no-any-return]


def orphaned(client: TestClient) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["name"]): o for o in client.get("/stats").json()["orphaned"]}


def warnings(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


def compact(client: TestClient) -> int:
    """Run retention now (max_events is 1); the oldest seq the log keeps."""
    store = store_of(client)
    store.compact_sync()
    return store.oldest_seq()


STREAM = "  - {{name: {}, enable_persistence: true, start_from: earliest}}\n"


def test_a_dropped_stream_is_orphaned_kept_and_pruned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = NodeFiles(tmp_path)
    files.write("streams:\n" + STREAM.format("audit") + STREAM.format("billing"))
    with files.serve() as client:
        assert client.post("/streams", json={"name": "adhoc"}).status_code == 201
        client.put("/kv/k", content=b"v")
        with client.websocket_connect("/ws/changes?stream=billing") as ws:
            assert ws.receive_json()["type"] == "events"
            ws.send_json({"ack": 1})
            assert ws.receive_json()["type"] == "caught_up"

    files.write("streams:\n" + STREAM.format("audit"))
    with caplog.at_level(logging.WARNING), files.serve() as client:
        streams = {s["name"]: s for s in client.get("/streams").json()["streams"]}
        assert sorted(streams) == ["adhoc", "audit", "billing"]  # kept, checkpoints and all
        assert (streams["billing"]["owner"], streams["billing"]["orphaned"]) == ("config", True)
        assert (streams["audit"]["owner"], streams["audit"]["orphaned"]) == ("config", False)
        assert (streams["adhoc"]["owner"], streams["adhoc"]["orphaned"]) == (None, False)
        assert client.get("/streams/billing").json()["orphaned"] is True
        stats = client.get("/stats").json()
        assert stats["streams"]["billing"]["orphaned"] is True
        assert orphaned(client)[("stream", "billing")]["pins"] == {"stream/billing/ws": 1}
        assert "stream 'billing' is orphaned" in warnings(caplog)
        assert "stream/billing/ws at seq 1" in warnings(caplog)
        # it delivers nothing...
        with client.websocket_connect("/ws/changes?stream=billing") as ws:
            message = ws.receive_json()
            assert (message["type"], message["code"]) == ("error", "orphaned")
        # ...and keeps pinning the log after its checkpoint
        for n in range(3):
            client.put(f"/kv/more{n}", content=b"v")
        assert compact(client) == 2
        # the file's streams are changed in the file, an orphan only deleted or re-declared
        replaced = client.put("/streams/billing", json={"batch_size": 5})
        assert replaced.status_code == 409 and replaced.json()["error"] == "orphaned"
        changed = client.put("/streams/audit", json={"batch_size": 5})
        assert changed.status_code == 409 and changed.json()["error"] == "ownership_conflict"

    files.write("streams:\n" + STREAM.format("audit") + STREAM.format("billing"))
    with files.serve() as client:  # declared again: adopted, resumes after its checkpoint
        assert client.get("/streams/billing").json()["orphaned"] is False
        with client.websocket_connect("/ws/changes?stream=billing") as ws:
            first = ws.receive_json()
            assert first["type"] == "events" and first["events"][0]["seq"] == 2

    files.write("streams:\n" + STREAM.format("audit"), prune=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING), files.serve() as client:
        assert [s["name"] for s in client.get("/streams").json()["streams"]] == ["adhoc", "audit"]
        assert store_of(client).get_checkpoint("stream/billing/ws") is None
        assert "pruned stream billing" in warnings(caplog)
        assert orphaned(client) == {}
        last = store_of(client).last_seq
        assert compact(client) == last  # only audit's checkpoint (at the head) pins now


HANDLERS = """\
handlers:
  - {{name: audit, log: {{path: "{tmp}/audit.jsonl"}}}}
  - {{name: keep, log: {{path: "{tmp}/keep.jsonl"}}}}
routes:
  - {{name: to-keep, handler_names: [keep]}}
"""
KEEP_ONLY = """\
handlers:
  - {{name: keep, log: {{path: "{tmp}/keep.jsonl"}}}}
routes:
  - {{name: to-keep, handler_names: [keep]}}
"""
AUDIT_ROUTE = "  - {name: to-audit, key_patterns: ['k.*'], handler_names: [audit]}\n"
AGGREGATIONS = """\
aggregations:
  - {name: all-keys, window: 1h}
"""
DROPPED_AGGREGATION = "  - {name: k-keys, window: 1h, key_patterns: ['k.*']}\n"


def lines(path: Path) -> list[str]:
    return [json.loads(line)["key"] for line in path.read_text().splitlines()]


def aggregates(client: TestClient) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in client.get("/bus/aggregates").json()["aggregations"]}


def counted(aggregation: dict[str, Any]) -> int:
    return sum(g["count"] for w in aggregation["windows"] for g in w["groups"])


def test_dropped_handlers_routes_and_aggregations_are_orphaned_then_pruned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = NodeFiles(tmp_path)
    audit, keep = tmp_path / "audit.jsonl", tmp_path / "keep.jsonl"
    handlers = HANDLERS.format(tmp=tmp_path)
    files.write(handlers + AUDIT_ROUTE + AGGREGATIONS + DROPPED_AGGREGATION)
    with files.serve() as client:
        made = {"name": "api-made", "log": {"path": str(tmp_path / "api.jsonl")}}
        assert client.post("/bus/handlers", json=made).status_code == 201
        route = {"name": "api-route", "handler_names": ["api-made"]}
        assert client.post("/bus/routes", json=route).status_code == 201
        client.put("/kv/k1", content=b"v")
        eventually_sync(lambda: audit.exists() and keep.exists() and lines(audit) == ["k1"])
        eventually_sync(lambda: counted(aggregates(client)["k-keys"]) == 1)
        eventually_sync(
            lambda: client.get("/bus/handlers/audit").json()["stats"]["checkpoint"] == 1
        )

    keep_only = KEEP_ONLY.format(tmp=tmp_path) + AGGREGATIONS  # audit, to-audit, k-keys gone
    files.write(keep_only)
    with caplog.at_level(logging.WARNING), files.serve() as client:
        listed = {h["name"]: h for h in client.get("/bus/handlers").json()["handlers"]}
        assert sorted(listed) == ["api-made", "audit", "keep"]
        assert (listed["audit"]["orphaned"], listed["audit"]["owner"]) == (True, "config")
        assert listed["audit"]["stats"]["state"] == "orphaned"
        assert listed["audit"]["stats"]["checkpoint"] == 1
        assert (listed["keep"]["orphaned"], listed["keep"]["owner"]) == (False, "config")
        assert (listed["api-made"]["owner"], listed["api-made"]["source"]) == (None, "stored")
        routes = {r["name"]: r for r in client.get("/bus/routes").json()["routes"]}
        assert routes["to-audit"]["orphaned"] is True and routes["api-route"]["owner"] is None
        kept = aggregates(client)
        assert kept["k-keys"]["orphaned"] is True and counted(kept["k-keys"]) == 1
        assert client.get("/stats").json()["bus"]["handlers"]["audit"]["state"] == "orphaned"
        found = orphaned(client)
        assert found[("handler", "audit")]["pins"] == {"stream/_bus/audit": 1}
        assert set(found) == {
            ("handler", "audit"),
            ("route", "to-audit"),
            ("aggregation", "k-keys"),
        }
        text = warnings(caplog)
        assert "handler 'audit' is orphaned" in text and "stream/_bus/audit at seq 1" in text
        assert "route 'to-audit' is orphaned" in text
        # the orphans receive and count nothing; the rest goes on
        client.put("/kv/k2", content=b"v")
        eventually_sync(lambda: lines(keep) == ["k1", "k2"])
        eventually_sync(lambda: counted(aggregates(client)["all-keys"]) == 2)
        assert lines(audit) == ["k1"] and counted(aggregates(client)["k-keys"]) == 1
        # the file's objects are changed in the file, orphans deleted or declared again
        body = {"name": "keep", "log": {"path": str(keep)}}
        changed = client.put("/bus/handlers/keep", json=body)
        assert changed.status_code == 409 and changed.json()["error"] == "ownership_conflict"
        taken = client.post("/bus/handlers", json={**body, "name": "audit"})
        assert taken.status_code == 409 and taken.json()["error"] == "orphaned"

    files.write(keep_only, prune=True)
    with files.serve() as client:
        names = [h["name"] for h in client.get("/bus/handlers").json()["handlers"]]
        assert names == ["api-made", "keep"]
        assert [r["name"] for r in client.get("/bus/routes").json()["routes"]] == [
            "api-route",
            "to-keep",
        ]
        assert list(aggregates(client)) == ["all-keys"]
        assert store_of(client).get_checkpoint("stream/_bus/audit") is None
        assert orphaned(client) == {}


PIPELINES = """\
pipelines:
  - sql: |
      CREATE STREAM views (page STRING, at TIMESTAMP) WITH (key_pattern = 'views/.*');
      CREATE PIPELINE views_per_page AS SELECT page, window_start, COUNT(*) AS n
        FROM TABLE(TUMBLE(TABLE views, DESCRIPTOR(at), INTERVAL '1' MINUTE))
        GROUP BY page, window_start, window_end;
"""
CLICKS = "  - function: tests.api.test_declare:clicks_per_page\n"


def rows(client: TestClient, name: str) -> list[dict[str, Any]]:
    return client.get(f"/pipelines/{name}/results").json()["rows"]  # type: ignore[no-any-return]


def test_a_dropped_pipeline_is_orphaned_readable_and_pruned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = NodeFiles(tmp_path)
    files.write(PIPELINES + CLICKS)
    click = orjson.dumps({"page": "home", "at": 1500})
    view = orjson.dumps({"page": "home", "at": "1970-01-01T00:00:01Z"})
    with files.serve() as client:
        client.put("/kv/clicks/1", content=click)
        eventually_sync(lambda: rows(client, "clicks_per_page"))
        client.post("/sql", content="CREATE STREAM api_s (a INT) WITH (key_pattern = 'a/.*');")

    files.write(PIPELINES)
    with caplog.at_level(logging.WARNING), files.serve() as client:
        listed = {p["name"]: p for p in client.get("/pipelines").json()["pipelines"]}
        assert listed["clicks_per_page"]["status"] == "orphaned"
        assert listed["clicks_per_page"]["orphaned"] is True
        assert listed["views_per_page"]["orphaned"] is False
        assert rows(client, "clicks_per_page")[0]["n"] == 1  # results stay readable
        stats = client.get("/stats").json()
        assert stats["pipelines"]["clicks_per_page"]["status"] == "orphaned"
        pins = orphaned(client)[("pipeline", "clicks_per_page")]["pins"]
        assert list(pins) == ["pipeline/clicks_per_page"]
        assert "pipeline 'clicks_per_page' is orphaned" in warnings(caplog)
        assert "pipeline/clicks_per_page at seq" in warnings(caplog)
        # it processes nothing more, while the declared one goes on
        client.put("/kv/clicks/2", content=click)
        client.put("/kv/views/1", content=view)
        eventually_sync(lambda: rows(client, "views_per_page"))
        assert rows(client, "clicks_per_page")[0]["n"] == 1
        shown = client.post("/sql", content="SHOW PIPELINES").json()["results"][0]["rows"]
        assert {r["name"]: r["status"] for r in shown}["clicks_per_page"] == "orphaned"

    files.write(PIPELINES, prune=True)
    with files.serve() as client:
        names = [p["name"] for p in client.get("/pipelines").json()["pipelines"]]
        assert names == ["views_per_page"]
        assert client.get("/pipelines/clicks_per_page").status_code == 404
        assert store_of(client).get_checkpoint("pipeline/clicks_per_page") is None
        shown = client.post("/sql", content="SHOW STREAMS").json()["results"][0]["rows"]
        assert sorted(r["name"] for r in shown) == ["api_s", "views"]  # the API's is not pruned


def test_a_start_without_a_file_changes_nothing(tmp_path: Path) -> None:
    files = NodeFiles(tmp_path)
    audit = tmp_path / "audit.jsonl"
    files.write(
        "streams:\n" + STREAM.format("billing") + HANDLERS.format(tmp=tmp_path) + AUDIT_ROUTE
        + AGGREGATIONS + PIPELINES + CLICKS
    )  # fmt: skip
    click = orjson.dumps({"page": "home", "at": 1500})
    with files.serve() as client:
        client.put("/kv/clicks/1", content=click)
        with client.websocket_connect("/ws/changes?stream=billing") as ws:
            assert ws.receive_json()["type"] == "events"
            ws.send_json({"ack": 1})
            assert ws.receive_json()["type"] == "caught_up"
        client.put("/kv/k1", content=b"v")
        eventually_sync(lambda: rows(client, "clicks_per_page"))
        eventually_sync(lambda: audit.exists() and lines(audit) == ["k1"])

    with files.serve(with_file=False) as client:
        streams = {s["name"]: s for s in client.get("/streams").json()["streams"]}
        assert streams["billing"]["orphaned"] is False
        assert store_of(client).get_checkpoint("stream/billing/ws").seq == 1  # type: ignore[union-attr]
        handlers = {h["name"]: h for h in client.get("/bus/handlers").json()["handlers"]}
        assert sorted(handlers) == ["audit", "keep"] and not handlers["audit"]["orphaned"]
        assert [p["name"] for p in client.get("/pipelines").json()["pipelines"]] == [
            "clicks_per_page",
            "views_per_page",
        ]
        assert orphaned(client) == {}
        # and all of it still runs
        client.put("/kv/clicks/2", content=click)
        client.put("/kv/k2", content=b"v")
        eventually_sync(lambda: lines(audit) == ["k1", "k2"])
        eventually_sync(lambda: rows(client, "clicks_per_page")[0]["n"] == 2)
        eventually_sync(lambda: counted(aggregates(client)["all-keys"]) == 4)
        with client.websocket_connect("/ws/changes?stream=billing") as ws:
            assert ws.receive_json()["events"][0]["seq"] == 2


async def test_the_file_cannot_take_what_the_api_made(tmp_path: Path) -> None:
    files = NodeFiles(tmp_path)
    files.write("streams:\n" + STREAM.format("audit") + STREAM.format("billing"))
    async with Node(load_settings(files.path)) as node:
        from changestream import StreamConfig

        await node.streams.create(StreamConfig("made-by-api", key_patterns=("x/.*",)))
        await node.compute.sql.execute(PIPELINES.split("|\n", 1)[1].replace("      ", ""))

    # the file now declares the API's stream, and drops billing: refused whole, nothing applied
    files.write("streams:\n" + STREAM.format("audit") + STREAM.format("made-by-api"))
    with pytest.raises(ConfigError) as raised:
        await Node(load_settings(files.path)).start()
    message = str(raised.value)
    assert "kvdb.yaml:4: streams.1.name: stream 'made-by-api' was made through the API" in message
    files.write("streams:\n" + STREAM.format("audit") + PIPELINES)
    with pytest.raises(ConfigError, match=r"kvdb.yaml:5: pipelines.0.sql: SQL stream 'views'"):
        await Node(load_settings(files.path)).start()

    files.write("streams:\n" + STREAM.format("audit") + STREAM.format("billing"))
    async with Node(load_settings(files.path)) as node:
        made = node.streams.get("made-by-api")
        assert made.ownership.owner is None and made.config.key_patterns == ("x/.*",)
        assert not node.streams.get("billing").ownership.orphaned  # not applied either
        assert node.compute.get("views_per_page").ownership.owner is None
        assert node.orphans() == []
