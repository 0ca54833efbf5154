"""``/sql``, ``/pipelines`` and ``WS /ws/pipelines/{name}`` in-process, plus /stats and /metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api import Settings, create_app
from tests.api.conftest import LocalClient
from tests.conftest import eventually_sync

STREAM = (
    "CREATE STREAM bids (bidtime TIMESTAMP, price DOUBLE, supplier STRING, "
    "WATERMARK FOR bidtime AS bidtime - INTERVAL '1' SECOND) WITH (key_pattern = 'bids/.*');"
)
PIPELINE = (
    "CREATE PIPELINE revenue AS SELECT supplier, window_start, window_end, SUM(price) AS total "
    "FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES)) "
    "GROUP BY supplier, window_start, window_end;"
)


def bid(client: TestClient, n: int, at: str, price: float, supplier: str = "s1") -> None:
    doc = {"bidtime": f"2020-04-15T{at}:00Z", "price": price, "supplier": supplier}
    assert client.put(f"/kv/bids/{n}", content=orjson.dumps(doc)).status_code == 200


def results(client: TestClient, name: str = "revenue") -> dict[str, Any]:
    response = client.get(f"/pipelines/{name}/results")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def test_sql_creates_a_pipeline_whose_results_are_a_table(client: TestClient) -> None:
    response = client.post(
        "/sql", content=STREAM + PIPELINE, headers={"content-type": "text/plain"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {"statement": "CREATE STREAM", "name": "bids", "action": "created"},
            {"statement": "CREATE PIPELINE", "name": "revenue", "action": "created"},
        ]
    }
    bid(client, 1, "08:05", 4.0)
    bid(client, 2, "08:07", 2.0)
    bid(client, 3, "08:11", 3.0, "s2")
    expected = {
        "columns": ["supplier", "window_start", "window_end", "total"],
        "rows": [
            {
                "supplier": "s1",
                "window_start": "2020-04-15T08:00:00.000Z",
                "window_end": "2020-04-15T08:10:00.000Z",
                "total": 6.0,
            },
            {
                "supplier": "s2",
                "window_start": "2020-04-15T08:10:00.000Z",
                "window_end": "2020-04-15T08:20:00.000Z",
                "total": 3.0,
            },
        ],
    }
    assert eventually_sync(lambda: results(client) == expected)
    listing = client.get("/pipelines").json()["pipelines"]
    assert [(p["name"], p["origin"], p["status"], p["events_in"]) for p in listing] == [
        ("revenue", "sql", "running", 3)
    ]
    one = client.get("/pipelines/revenue").json()
    assert (
        one["sql"].startswith("CREATE PIPELINE revenue")
        and one["watermark"] == "2020-04-15T08:10:59.000Z"
    )


def test_sql_as_json_and_show(client: TestClient) -> None:
    client.post("/sql", json={"sql": STREAM})
    response = client.post("/sql", json={"sql": "SHOW STREAMS; SHOW PIPELINES"})
    shown = response.json()["results"]
    assert shown[0]["rows"][0]["name"] == "bids" and shown[1]["rows"] == []
    assert client.post("/sql", json={"script": "x"}).json()["error"] == "bad_request"


@pytest.mark.parametrize(
    ("script", "status", "document"),
    [
        ("CREATE STREAM s (a INT", 400, {"error": "sql_parse_error", "line": 1, "column": 23}),
        (
            "CREATE PIPELINE p AS\nSELECT COUNT(*) FROM TABLE(TUMBLE(TABLE nope, DESCRIPTOR(t), INTERVAL '1' MINUTE))\nGROUP BY window_start, window_end",
            400,
            {"error": "sql_plan_error", "line": 2, "column": 41},
        ),
        (
            "SELECT 1",
            400,
            {
                "error": "unsupported_sql",
                "construct": "a SELECT on its own",
                "line": 1,
                "column": 1,
            },
        ),
        ("DROP PIPELINE nothing", 404, {"error": "unknown_pipeline", "name": "nothing"}),
        ("DROP STREAM nothing", 404, {"error": "unknown_sql_stream", "name": "nothing"}),
        (STREAM + STREAM, 409, {"error": "sql_stream_exists", "name": "bids"}),
        ("", 400, {"error": "sql_parse_error"}),
    ],
)
def test_sql_errors(client: TestClient, script: str, status: int, document: dict[str, Any]) -> None:
    response = client.post("/sql", content=script)
    assert response.status_code == status
    body = response.json()
    assert body.items() >= document.items(), body
    assert body["message"]


def test_delete_pipeline_and_unknown_names(client: TestClient) -> None:
    client.post("/sql", content=STREAM + PIPELINE)
    assert client.delete("/pipelines/revenue").json() == {"name": "revenue", "deleted": True}
    for method, path in [
        ("get", "/pipelines/revenue"),
        ("get", "/pipelines/revenue/results"),
        ("delete", "/pipelines/revenue"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404 and response.json()["error"] == "unknown_pipeline"


def test_websocket_sends_a_snapshot_then_updates(client: TestClient) -> None:
    client.post("/sql", content=STREAM + PIPELINE)
    bid(client, 1, "08:05", 4.0)
    assert eventually_sync(lambda: results(client)["rows"])
    with client.websocket_connect("/ws/pipelines/revenue") as ws:
        snapshot = ws.receive_json()
        assert snapshot["type"] == "snapshot" and snapshot["rows"][0]["total"] == 4.0
        bid(client, 2, "08:06", 1.5)
        message = ws.receive_json()
        assert message == {
            "type": "updates",
            "updates": [
                {
                    "op": "upsert",
                    "row": {
                        "supplier": "s1",
                        "window_start": "2020-04-15T08:00:00.000Z",
                        "window_end": "2020-04-15T08:10:00.000Z",
                        "total": 5.5,
                    },
                }
            ],
        }
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}


def test_websocket_for_an_unknown_pipeline_says_so(client: TestClient) -> None:
    with client.websocket_connect("/ws/pipelines/nope") as ws:
        message = ws.receive_json()
        assert message["type"] == "error" and message["code"] == "unknown_pipeline"


def test_stats_and_metrics_have_per_pipeline_figures(client: TestClient) -> None:
    client.post("/sql", content=STREAM + PIPELINE)
    bid(client, 1, "08:05", 4.0)
    assert eventually_sync(lambda: results(client)["rows"])
    stats = client.get("/stats").json()["pipelines"]["revenue"]
    assert stats["events_in"] == 1 and stats["status"] == "running"
    assert {"late_dropped", "windows_fired", "lag_events", "lag_ms", "watermark"} <= set(stats)
    metrics = client.get("/metrics").text
    assert 'kvdb_pipeline_events_in_total{pipeline="revenue"} 1.0' in metrics
    assert 'kvdb_pipeline_late_dropped_total{pipeline="revenue"} 0.0' in metrics
    assert 'kvdb_pipeline_lag_events{pipeline="revenue"}' in metrics


def test_roles(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(
        server={
            "tokens": [{"token": "r" * 20, "role": "read"}, {"token": "a" * 20, "role": "admin"}]
        }
    )
    with LocalClient(create_app(settings)) as client:
        reader, admin = (
            {"authorization": "Bearer " + "r" * 20},
            {"authorization": "Bearer " + "a" * 20},
        )
        assert client.post("/sql", content=STREAM, headers=reader).status_code == 403
        assert client.post("/sql", content=STREAM + PIPELINE, headers=admin).status_code == 200
        assert client.get("/pipelines", headers=reader).status_code == 200
        assert client.get("/pipelines/revenue/results", headers=reader).status_code == 200
        assert client.delete("/pipelines/revenue", headers=reader).status_code == 403
        assert client.get("/pipelines").status_code == 401
        with client.websocket_connect("/ws/pipelines/revenue") as ws:
            assert ws.receive_json()["code"] == "unauthorized"
        with client.websocket_connect(f"/ws/pipelines/revenue?access_token={'r' * 20}") as ws:
            assert ws.receive_json()["type"] == "snapshot"


def test_sql_pipelines_come_back_after_a_restart(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    with LocalClient(create_app(settings)) as client:
        client.post("/sql", content=STREAM + PIPELINE)
        bid(client, 1, "08:05", 4.0)
        assert eventually_sync(lambda: results(client)["rows"])
    with LocalClient(create_app(settings)) as client:
        assert results(client)["rows"][0]["total"] == 4.0
        bid(client, 2, "08:06", 1.0)
        assert eventually_sync(lambda: results(client)["rows"][0]["total"] == 5.0)
