"""WS /ws/changes: batches, caught_up, progress, resume, named streams with acks, bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from api import Settings, create_app
from tests.api.conftest import LocalClient


def receive_until(ws: WebSocketTestSession, kind: str) -> list[dict[str, Any]]:
    messages = []
    while True:
        message = ws.receive_json()
        messages.append(message)
        if message["type"] == kind:
            return messages


def events_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for m in messages if m["type"] == "events" for e in m["events"]]


def test_history_then_caught_up_then_live(client: TestClient) -> None:
    for i in range(5):
        client.put(f"/kv/k{i}", content=b"v")
    with client.websocket_connect("/ws/changes?since=2") as ws:
        history = receive_until(ws, "caught_up")
        assert [e["seq"] for e in events_of(history)] == [3, 4, 5]
        assert history[-1] == {"type": "caught_up", "seq": 5}
        client.put("/kv/live", content=b"v")
        live = ws.receive_json()
        assert (
            live["type"] == "events"
            and live["events"][0]["key"] == "live"
            and live["last_seq"] == 6
        )


def test_caught_up_is_sent_even_when_there_is_nothing(client: TestClient) -> None:
    with client.websocket_connect("/ws/changes") as ws:
        assert ws.receive_json() == {"type": "caught_up", "seq": 0}


def test_filters_and_progress_bookmarks(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(server={"subscriptions": {"progress_interval": "50ms"}})
    with (
        LocalClient(create_app(settings)) as client,
        client.websocket_connect("/ws/changes?pattern=users/.*&type=INSERT") as ws,
    ):
        assert ws.receive_json()["type"] == "caught_up"
        client.put("/kv/orders/1", content=b"v")
        client.put("/kv/users/1", content=b"v")
        client.put("/kv/users/1", content=b"v2")  # an UPDATE: filtered out
        message = ws.receive_json()
        assert [e["key"] for e in message["events"]] == ["users/1"]
        progress = receive_until(ws, "progress")[-1]
        assert progress == {"type": "progress", "seq": 3}  # resume point past the skipped update


def test_resume_after_reconnect_has_no_gap_and_no_duplicate(client: TestClient) -> None:
    seen: list[int] = []
    with client.websocket_connect("/ws/changes?since=0") as ws:
        receive_until(ws, "caught_up")
        for i in range(3):
            client.put(f"/kv/a{i}", content=b"v")
        while len(seen) < 3:
            seen += [e["seq"] for e in events_of([ws.receive_json()])]
    for i in range(3):  # written while disconnected
        client.put(f"/kv/b{i}", content=b"v")
    with client.websocket_connect(f"/ws/changes?since={seen[-1]}") as ws:
        seen += [e["seq"] for e in events_of(receive_until(ws, "caught_up"))]
    assert seen == [1, 2, 3, 4, 5, 6]


def test_named_stream_with_acks(client: TestClient) -> None:
    client.post(
        "/streams",
        json={
            "name": "jobs",
            "key_patterns": ["jobs/.*"],
            "enable_persistence": True,
            "start_from": "earliest",
        },
    )
    for i in range(4):
        client.put(f"/kv/jobs/{i}", content=b"v")
    with client.websocket_connect("/ws/changes?stream=jobs") as ws:
        assert [e["seq"] for e in events_of(receive_until(ws, "caught_up"))] == [1, 2, 3, 4]
        ws.send_json({"ack": 2})
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}  # the ack was processed before the ping
    stats = client.get("/streams/jobs/stats").json()
    (consumer,) = stats["consumers"]  # detached on disconnect; its checkpoint stays
    assert (consumer["name"], consumer["attached"], consumer["pins"]) == ("ws", False, 2)
    with client.websocket_connect("/ws/changes?stream=jobs") as ws:
        # unacknowledged events come again: at least once
        assert [e["seq"] for e in events_of(receive_until(ws, "caught_up"))] == [3, 4]
        ws.send_json({"ack": 99})
        error = ws.receive_json()
        assert (
            error["type"] == "error" and error["error"] == "invalid_ack"
            if "error" in error
            else error["code"] == "invalid_ack"
        )


def test_consumer_busy_and_unknown_stream(client: TestClient) -> None:
    client.post("/streams", json={"name": "s"})
    with client.websocket_connect("/ws/changes?stream=s") as first:
        first.receive_json()
        with client.websocket_connect("/ws/changes?stream=s") as second:
            error = second.receive_json()
            assert error["type"] == "error" and error["code"] == "consumer_busy"
        with client.websocket_connect("/ws/changes?stream=s&consumer=other") as third:
            assert third.receive_json()["type"] == "caught_up"
    with client.websocket_connect("/ws/changes?stream=nope") as ws:
        error = ws.receive_json()
        assert error["code"] == "unknown_stream"
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
        assert info.value.code == 1008


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        ("not json", "must be JSON"),
        ('{"ack": -1}', "non-negative"),
        ('{"ack": 1}', "named streams"),
        ('{"hello": 1}', "unknown message"),
    ],
)
def test_malformed_messages_get_an_error_and_the_connection_lives(
    client: TestClient, message: str, fragment: str
) -> None:
    with client.websocket_connect("/ws/changes") as ws:
        ws.receive_json()
        ws.send_text(message)
        error = ws.receive_json()
        assert (
            error["type"] == "error"
            and error["code"] == "bad_message"
            and fragment in error["message"]
        )
        client.put("/kv/still-alive", content=b"v")
        assert ws.receive_json()["events"][0]["key"] == "still-alive"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("since=x", "bad_request"),
        ("pattern=(", "invalid_pattern"),
        ("type=NOPE", "invalid_stream_config"),
        ("stream=s&since=1", "bad_request"),
    ],
)
def test_bad_subscriptions_are_refused_clearly(client: TestClient, query: str, code: str) -> None:
    with client.websocket_connect(f"/ws/changes?{query}") as ws:
        assert ws.receive_json()["code"] == code


def test_compacted_since(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(node={"retention": {"max_events": 1, "compaction_interval": "1h"}})
    app = create_app(settings)
    with LocalClient(app) as client:
        for i in range(4):
            client.put(f"/kv/k{i}", content=b"v")
        app.node.store.compact_sync()
        with client.websocket_connect("/ws/changes?since=0") as ws:
            error = ws.receive_json()
            assert error["code"] == "compacted" and error["oldest_seq"] == 4


def test_tokens_apply_to_websockets(settings_factory: Callable[..., Settings]) -> None:
    token = "reader-token-0123456789"
    settings = settings_factory(server={"tokens": [{"token": token, "role": "read"}]})
    with LocalClient(create_app(settings)) as client:
        with client.websocket_connect("/ws/changes") as ws:
            assert ws.receive_json()["code"] == "unauthorized"
        with client.websocket_connect(f"/ws/changes?access_token={token}") as ws:
            assert ws.receive_json()["type"] == "caught_up"
        with client.websocket_connect(
            "/ws/changes", headers={"authorization": f"Bearer {token}"}
        ) as ws:
            assert ws.receive_json()["type"] == "caught_up"
