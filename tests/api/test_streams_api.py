"""/streams: CRUD, live update, stats, reserved names, YAML-configured streams."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from api import Settings, create_app, load_settings
from tests.api.conftest import LocalClient


def test_crud(client: TestClient) -> None:
    created = client.post(
        "/streams", json={"name": "orders", "key_patterns": ["orders/.*"], "batch_size": 10}
    )
    assert created.status_code == 201 and created.json()["batch_size"] == 10
    assert client.post("/streams", json={"name": "orders"}).status_code == 409
    assert client.get("/streams/orders").json()["key_patterns"] == ["orders/.*"]
    updated = client.put("/streams/orders", json={"key_patterns": ["orders/.*", "refunds/.*"]})
    assert updated.status_code == 200 and updated.json()["key_patterns"] == [
        "orders/.*",
        "refunds/.*",
    ]
    assert client.put("/streams/fresh", json={}).status_code == 201
    listed = client.get("/streams").json()["streams"]
    assert [s["name"] for s in listed] == ["fresh", "orders"]
    assert client.delete("/streams/orders").json() == {"name": "orders", "deleted": True}
    missing = client.get("/streams/orders")
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_stream"


def test_bad_stream_definitions(client: TestClient) -> None:
    for body, code in [
        ({"name": "x", "key_patterns": ["("]}, "invalid_pattern"),
        ({"name": "x", "event_types": ["NOPE"]}, "invalid_stream_config"),
        ({"name": "x", "bogus": 1}, "invalid_stream_config"),
        ({"name": "_system"}, "bad_request"),
        ([1, 2], "bad_request"),
    ]:
        response = client.post("/streams", json=body)
        assert response.status_code == 400 and response.json()["error"] == code, body
    assert client.put("/streams/a", json={"name": "b"}).status_code == 400
    assert client.delete("/streams/_bus").status_code == 400


def test_stats_endpoint(client: TestClient) -> None:
    client.post("/streams", json={"name": "s"})
    stats = client.get("/streams/s/stats").json()
    assert stats["name"] == "s" and stats["consumers"] == [] and stats["lag_events"] == 0


def test_streams_from_yaml_are_created_at_start(tmp_path: Path) -> None:
    path = tmp_path / "kvdb.yaml"
    path.write_text(
        f"""
node: {{data_dir: "{tmp_path / "data"}"}}
streams:
  - name: audit
    key_patterns: ["users/.*"]
    event_types: [DELETE]
    enable_persistence: true
    start_from: earliest
"""
    )
    with LocalClient(create_app(load_settings(path))) as client:
        stream = client.get("/streams/audit").json()
        assert stream["event_types"] == ["DELETE"] and stream["enable_persistence"] is True


def test_yaml_stream_errors_name_the_field(tmp_path: Path) -> None:
    import pytest

    from api.errors import ConfigError

    path = tmp_path / "kvdb.yaml"
    for text, message in [
        (
            "streams:\n  - name: a\n    key_patterns: ['(']\n",
            r"kvdb.yaml:2: streams.0: .*not a valid RE2",
        ),
        (
            "streams:\n  - name: a\n    batch_sise: 3\n",
            r"kvdb.yaml:3: streams.0.batch_sise: unknown field",
        ),
        ("streams:\n  - name: a\n  - name: a\n", r"stream names must be unique; repeated: a"),
        ("streams:\n  - name: a\n    start_from: soon\n", r"streams.0.start_from"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_settings(path)


def test_api_created_streams_survive_a_restart(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    with LocalClient(create_app(settings)) as client:
        client.post("/streams", json={"name": "kept", "enable_persistence": True})
    with LocalClient(create_app(settings)) as client:
        assert client.get("/streams/kept").status_code == 200


def test_a_stream_dropped_from_the_yaml_is_orphaned_until_pruned(tmp_path: Path) -> None:
    """Dropped from the file, a stream is kept, orphaned, with its checkpoints (so no reader
    loses its place by accident); ``prune: true`` removes it and releases them. Streams made
    through the API are never the file's. (Until issue 8, a dropped stream was removed, with
    its checkpoints, at the next start.)"""
    path = tmp_path / "kvdb.yaml"
    node = f'node: {{data_dir: "{tmp_path / "data"}"}}\n'
    stream = "  - {{name: {}, enable_persistence: true, start_from: earliest}}\n"
    path.write_text(node + "streams:\n" + stream.format("audit") + stream.format("billing"))
    with LocalClient(create_app(load_settings(path))) as client:
        assert client.post("/streams", json={"name": "adhoc"}).status_code == 201
        assert client.put("/kv/k", content=b"v").status_code in (200, 201)
        with client.websocket_connect("/ws/changes?stream=billing") as ws:
            assert ws.receive_json()["type"] == "events"
            ws.send_json({"ack": 1})
            assert ws.receive_json()["type"] == "caught_up"
        store = client.app.node.store  # type: ignore[attr-defined]
        assert store.get_checkpoint("stream/billing/ws") is not None

    path.write_text(node + "streams:\n" + stream.format("audit"))
    with LocalClient(create_app(load_settings(path))) as client:
        streams = {s["name"]: s["orphaned"] for s in client.get("/streams").json()["streams"]}
        assert streams == {"adhoc": False, "audit": False, "billing": True}
        store = client.app.node.store  # type: ignore[attr-defined]
        assert store.get_checkpoint("stream/billing/ws") is not None  # kept, still pinning

    path.write_text(node + "prune: true\n")
    with LocalClient(create_app(load_settings(path))) as client:
        names = [s["name"] for s in client.get("/streams").json()["streams"]]
        assert names == ["adhoc"]  # the API-created stream is not the file's to remove
        store = client.app.node.store  # type: ignore[attr-defined]
        assert store.get_checkpoint("stream/billing/ws") is None  # retention released
