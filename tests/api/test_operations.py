"""/health, /stats, /metrics and the OpenAPI document."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_health(client: TestClient) -> None:
    client.put("/kv/a", content=b"1")
    assert client.get("/health").json() == {"status": "ok", "node_id": "api-node", "last_seq": 1}


def test_stats(client: TestClient) -> None:
    for i in range(3):
        client.put(f"/kv/k{i}", content=b"v")
    client.get("/kv/k0")
    client.get("/kv/missing")
    stats = client.get("/stats").json()
    assert stats["last_seq"] == 3 and stats["log_events"] == 3 and stats["records"] == 3
    assert stats["writer"]["events"] == 3 and stats["writer"]["commits"] == 3
    assert stats["http"] == {"get 200": 1, "get 404": 1, "put 200": 3}


def test_metrics_in_prometheus_text_format(client: TestClient) -> None:
    client.put("/kv/a", content=b"1")
    client.post(
        "/kv/_batch",
        json={"ops": [{"op": "put", "key": "b", "value": "2"}, {"op": "delete", "key": "a"}]},
    )
    client.get("/kv/b")
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = set(response.text.splitlines())
    for expected in [
        'kvdb_http_requests_total{op="put",status="200"} 1.0',
        'kvdb_http_requests_total{op="batch",status="200"} 1.0',
        "kvdb_reads_total 1.0",
        "kvdb_writes_total 3.0",
        "kvdb_write_requests_total 2.0",
        "kvdb_commits_total 2.0",
        'kvdb_commit_group_size_bucket{le="1"} 2.0',
        "kvdb_commit_latency_seconds_count 2.0",
        "kvdb_last_seq 3.0",
        "kvdb_changelog_events 3.0",
        "kvdb_changelog_oldest_seq 1.0",
    ]:
        assert expected in lines, expected


def test_unknown_routes_use_the_error_format(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "no route for GET /nope"}


def test_openapi_documents_the_kv_paths(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/kv/{key}", "/kv", "/kv/_batch", "/health", "/metrics"} <= set(schema["paths"])
    assert set(schema["paths"]["/kv/{key}"]) >= {"get", "put", "delete"}
    assert "Error" in schema["components"]["schemas"]


def test_stream_stats_and_metrics(client: TestClient) -> None:
    client.post("/streams", json={"name": "orders", "enable_persistence": True})
    with client.websocket_connect("/ws/changes?stream=orders") as ws:
        ws.receive_json()
        client.put("/kv/o1", content=b"v")
        ws.receive_json()
        stats = client.get("/stats").json()
        assert stats["subscribers"] == 1
        consumer = stats["streams"]["orders"]["consumers"]["ws"]
        assert consumer["state"] == "live" and consumer["checkpoint"] == 0
        assert stats["streams"]["orders"]["lag_events"] == 1
        lines = set(client.get("/metrics").text.splitlines())
        assert 'kvdb_stream_delivered_total{consumer="ws",stream="orders"} 1.0' in lines
        assert 'kvdb_stream_lag_events{consumer="ws",stream="orders"} 1.0' in lines
        assert "kvdb_subscribers 1.0" in lines
