"""/bus over HTTP: handlers and routes (stored, restored), dead letters, replay, aggregates,
roles, and the bus in /stats and /metrics."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import Settings, create_app, load_settings
from tests.api.conftest import LocalClient
from tests.conftest import eventually_sync
from tests.eventbus import sample_handlers

READ, ADMIN = "r" * 20, "a" * 20


def log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_handlers_and_routes_crud_and_delivery(client: TestClient, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    created = client.post("/bus/handlers", json={"name": "audit", "log": {"path": str(audit)}})
    assert created.status_code == 201, created.text
    assert created.json()["kind"] == "log" and created.json()["source"] == "stored"
    assert created.json()["stats"]["delivered"] == 0
    again = client.post("/bus/handlers", json={"name": "audit", "log": {"path": str(audit)}})
    assert again.status_code == 409 and again.json()["error"] == "handler_exists"

    route = {"name": "users", "key_patterns": ["users/.*"], "handler_names": ["audit"]}
    assert client.post("/bus/routes", json=route).status_code == 201
    client.put("/kv/users/1", content=b"ada")
    client.put("/kv/orders/1", content=b"x")
    client.delete("/kv/users/1")
    eventually_sync(lambda: len(log_lines(audit)) == 2)
    assert [(e["type"], e["key"]) for e in log_lines(audit)] == [
        ("INSERT", "users/1"),
        ("DELETE", "users/1"),
    ]

    other = client.put(
        "/bus/routes/vip",
        json={
            "key_patterns": ["vip/.*"],
            "priority": 10,
            "handler_names": ["audit"],
            "final": True,
        },
    )
    assert other.status_code == 201 and other.json()["stored"] is True
    assert [r["name"] for r in client.get("/bus/routes").json()["routes"]] == ["vip", "users"]
    assert client.put("/bus/routes/vip", json={"handler_names": ["audit"]}).status_code == 200
    assert client.get("/bus/routes/vip").json()["priority"] == 0

    in_use = client.delete("/bus/handlers/audit")
    assert in_use.status_code == 409 and in_use.json()["error"] == "handler_in_use"
    assert in_use.json()["routes"] == ["users", "vip"]
    assert client.delete("/bus/routes/vip").json() == {"name": "vip", "deleted": True}
    assert client.delete("/bus/routes/users").status_code == 200
    assert client.delete("/bus/handlers/audit").json() == {"name": "audit", "deleted": True}
    missing = client.get("/bus/handlers/audit")
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_handler"
    assert client.get("/bus/routes/users").json()["error"] == "unknown_route"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"name": "h", "python": "no_such_pkg.mod:fn"},
            "python: handler 'h': cannot import module 'no_such_pkg.mod'",
        ),
        ({"name": "h", "python": "tests.eventbus.sample_handlers:nope"}, "has no attribute 'nope'"),
        (
            {"name": "h", "webhook": {"url": "ftp://example.com/x"}},
            "webhook.url: webhook url 'ftp://example.com/x' must be an absolute http",
        ),
        (
            {"name": "h", "webhook": {"url": "http://x"}, "log": {"path": "/tmp/x"}},
            "give exactly one of webhook, log or python",
        ),
        (
            {"name": "h", "log": {"path": "/no/such/dir/a.log"}},
            "log.path: directory '/no/such/dir' does not exist",
        ),
        (
            {"name": "h", "python": "tests.eventbus.sample_handlers:on_event", "batch_size": 0},
            "batch_size: Input should be greater than or equal to 1",
        ),
        (
            {"name": "h h", "python": "tests.eventbus.sample_handlers:on_event"},
            "name: handler name 'h h' must be",
        ),
        ({"name": "h", "pyton": "x:y"}, "pyton: unknown field"),
    ],
)
def test_bad_handler_bodies_are_refused_whole(client: TestClient, body: Any, message: str) -> None:
    response = client.post("/bus/handlers", json=body)
    assert response.status_code == 400 and message in response.json()["message"], response.json()
    assert client.get("/bus/handlers").json()["handlers"] == []


def test_bad_route_bodies(client: TestClient) -> None:
    for body, code, message in [
        ({"name": "r", "handler_names": ["ghost"]}, "invalid_route", "unknown handler(s) ghost"),
        ({"name": "r", "handler_names": []}, "bad_request", "handler_names"),
        (
            {"name": "r", "handler_names": ["x"], "key_patterns": ["(a"]},
            "bad_request",
            "key_patterns: key pattern '(a' is not a valid RE2",
        ),
        (
            {"name": "r", "handler_names": ["x"], "event_types": ["UPSERT"]},
            "bad_request",
            "unknown event type 'UPSERT'",
        ),
        ([1], "bad_request", "JSON object"),
    ]:
        response = client.post("/bus/routes", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"] == code and message in response.json()["message"], (
            response.json()
        )
    assert (
        client.put("/bus/routes/a", json={"name": "b", "handler_names": ["x"]}).status_code == 400
    )


def test_dead_letters_inspect_redrive_purge(client: TestClient) -> None:
    sample_handlers.FRAGILE["broken"] = True
    sample_handlers.SEEN.clear()
    handler = {
        "name": "fragile",
        "python": "tests.eventbus.sample_handlers:fragile",
        "retry": {"max_attempts": 2, "initial_delay": 0, "max_delay": 0},
    }
    assert client.post("/bus/handlers", json=handler).status_code == 201
    client.post("/bus/routes", json={"name": "all", "handler_names": ["fragile"]})
    for key in ("ok1", "bad1", "ok2", "bad2"):
        client.put(f"/kv/{key}", content=b"v")
    eventually_sync(lambda: client.get("/bus/dead-letters").json()["counts"] == {"fragile": 2})

    page = client.get("/bus/dead-letters?limit=1").json()
    assert [d["id"] for d in page["dead_letters"]] == ["fragile/2"] and page["next"] == "fragile/2"
    assert page["dead_letters"][0]["error"] == "ValueError: cannot handle bad1"
    assert (
        client.get(f"/bus/dead-letters?after={page['next']}").json()["dead_letters"][0]["id"]
        == "fragile/4"
    )
    one = client.get("/bus/dead-letters/fragile/2").json()
    assert one["attempts"] == 2 and one["events"][0]["key"] == "bad1"
    assert client.get("/bus/dead-letters/fragile/3").json()["error"] == "unknown_dead_letter"
    assert client.get("/bus/dead-letters?after=nonsense").status_code == 400

    still = client.post("/bus/dead-letters/fragile/2/redrive").json()
    assert still == {
        "id": "fragile/2",
        "redriven": False,
        "error": "ValueError: cannot handle bad1",
    }
    sample_handlers.FRAGILE["broken"] = False
    assert client.post("/bus/dead-letters/fragile/2/redrive").json()["redriven"] is True
    assert 2 in sample_handlers.SEEN
    sample_handlers.FRAGILE["broken"] = True
    batch = client.post("/bus/dead-letters/redrive", json={"handler": "fragile"}).json()
    assert (batch["redriven"], batch["failed"]) == (0, 1)
    assert client.delete("/bus/dead-letters").status_code == 400  # says which ones
    assert client.delete("/bus/dead-letters?handler=fragile").json() == {"purged": 1}
    assert client.get("/bus/dead-letters").json()["counts"] == {}


def test_replay_roles_and_results(settings_factory: Callable[..., Settings]) -> None:
    sample_handlers.SEEN.clear()
    tokens = [{"token": READ, "role": "read"}, {"token": ADMIN, "role": "admin"}]
    admin = {"authorization": f"Bearer {ADMIN}"}
    reader = {"authorization": f"Bearer {READ}"}
    with LocalClient(create_app(settings_factory(server={"tokens": tokens}))) as client:
        for i in range(5):
            client.put(f"/kv/k{i}", content=b"v", headers=admin)
        body = {"name": "h", "python": "tests.eventbus.sample_handlers:on_event"}
        assert client.post("/bus/handlers", json=body, headers=reader).status_code == 403
        assert client.post("/bus/handlers", json=body, headers=admin).status_code == 201
        replay = {"handler": "h", "from_seq": 2, "to_seq": 4}
        unrouted = client.post("/bus/replay", json={**replay, "dry_run": True}, headers=reader)
        assert unrouted.status_code == 400 and "ignore_routes" in unrouted.json()["message"]
        route = {"name": "r", "key_patterns": ["k[12]"], "handler_names": ["h"]}
        assert client.post("/bus/routes", json=route, headers=admin).status_code == 201
        routed = client.post("/bus/replay", json={**replay, "dry_run": True}, headers=reader)
        assert [e["key"] for e in routed.json()["events"]] == ["k1", "k2"]  # through its route
        replay["ignore_routes"] = True
        dry = client.post("/bus/replay", json={**replay, "dry_run": True}, headers=reader)
        assert dry.status_code == 200, dry.text
        assert dry.json()["would_deliver"] == {"h": 3} and sample_handlers.SEEN == []
        assert [e["key"] for e in dry.json()["events"]] == ["k1", "k2", "k3"]
        assert client.post("/bus/replay", json=replay, headers=reader).status_code == 403
        done = client.post("/bus/replay", json=replay, headers=admin).json()
        assert done["delivered"] == {"h": 3} and sorted(sample_handlers.SEEN) == [2, 3, 4]
        bad = client.post("/bus/replay", json={"handler": "h"}, headers=admin)
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_replay"
        unknown = client.post("/bus/replay", json={"route": "nope", "from_seq": 1}, headers=admin)
        assert unknown.status_code == 404


def test_aggregates_stats_and_metrics(tmp_path: Path) -> None:
    config = tmp_path / "kvdb.yaml"
    config.write_text(
        f"""
node: {{data_dir: "{tmp_path / "data"}"}}
handlers:
  - {{name: audit, log: {{path: "{tmp_path / "a.jsonl"}"}}}}
routes:
  - {{name: all, handler_names: [audit]}}
aggregations:
  - {{name: orders, window: 1h, key_patterns: ["orders/.*"], sum_fields: [total]}}
"""
    )
    settings = load_settings(config)
    with LocalClient(create_app(settings)) as client:
        client.put("/kv/orders/1", content=b'{"total": 5}')
        client.put("/kv/orders/2", content=b'{"total": 7}')
        eventually_sync(
            lambda: client.get("/stats").json()["bus"]["handlers"]["audit"]["delivered"] == 2
        )

        def orders_count() -> int:
            (aggregation,) = client.get("/bus/aggregates").json()["aggregations"]
            return sum(g["count"] for w in aggregation["windows"] for g in w["groups"])

        eventually_sync(lambda: orders_count() == 2)
        (aggregation,) = client.get("/bus/aggregates?name=orders").json()["aggregations"]
        (group,) = aggregation["windows"][0]["groups"]
        assert (group["key_pattern"], group["type"], group["sums"]) == (
            "orders/.*",
            "INSERT",
            {"total": 12},
        )
        assert client.get("/bus/aggregates?name=nope").json()["error"] == "unknown_aggregation"

        bus = client.get("/stats").json()["bus"]
        assert bus["routes"] == 1 and bus["dead_letters"] == {}
        assert bus["handlers"]["audit"]["lag_events"] == 0
        lines = set(client.get("/metrics").text.splitlines())
        for expected in [
            'kvdb_bus_delivered_total{handler="audit"} 2.0',
            'kvdb_bus_dead_lettered_total{handler="audit"} 0.0',
            'kvdb_bus_lag_events{handler="audit"} 0.0',
            'kvdb_bus_latency_seconds_count{handler="audit"} 2.0',
        ]:
            assert expected in lines, expected


def test_api_definitions_survive_a_restart(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    audit = tmp_path / "audit.jsonl"
    with LocalClient(create_app(settings)) as client:
        client.post("/bus/handlers", json={"name": "audit", "log": {"path": str(audit)}})
        client.post("/bus/routes", json={"name": "all", "handler_names": ["audit"]})
        client.put("/kv/a", content=b"1")
        eventually_sync(lambda: len(log_lines(audit)) == 1)
    with LocalClient(create_app(settings)) as client:
        assert client.get("/bus/handlers/audit").json()["source"] == "stored"
        client.put("/kv/b", content=b"2")
        eventually_sync(lambda: len(log_lines(audit)) >= 2)
        assert [e["key"] for e in log_lines(audit)][-1] == "b"
