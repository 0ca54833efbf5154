"""GET /changes: pages, filters, long poll, server-sent events, compaction and bad input."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from api import Settings, create_app
from tests.api.conftest import LocalClient


def fill(client: TestClient) -> None:
    client.put("/kv/users/1", content=b"ada")
    client.put("/kv/orders/1", content=b"o1")
    client.put("/kv/users/2", content=b"bob")
    client.put("/kv/users/1", content=b"ada lovelace")
    client.delete("/kv/orders/1")
    client.put("/kv/bin", content=b"\xff")


def test_page_of_events(client: TestClient) -> None:
    fill(client)
    page = client.get("/changes").json()
    assert [e["seq"] for e in page["events"]] == [1, 2, 3, 4, 5, 6]
    assert page["last_seq"] == 6
    update = page["events"][3]
    assert (
        update["type"] == "UPDATE"
        and update["old_value"] == "ada"
        and update["new_value"] == "ada lovelace"
    )
    assert update["origin"] == "api-node" and isinstance(update["hlc"], str) and update["txn"] == 4
    assert page["events"][5]["encoding"] == "base64" and page["events"][5]["new_value"] == "/w=="
    assert client.get("/changes", params={"since": 4}).json()["events"][0]["seq"] == 5
    assert client.get("/changes", params={"since": "now"}).json() == {"events": [], "last_seq": 6}


def test_filters_and_resume_token(client: TestClient) -> None:
    fill(client)
    users = client.get("/changes", params={"pattern": "users/.*"}).json()
    assert [e["seq"] for e in users["events"]] == [1, 3, 4]
    both = client.get(
        "/changes",
        params=[
            ("pattern", "users/1"),
            ("pattern", "orders/.*"),
            ("type", "UPDATE"),
            ("type", "delete"),
        ],
    ).json()
    assert [(e["key"], e["type"]) for e in both["events"]] == [
        ("users/1", "UPDATE"),
        ("orders/1", "DELETE"),
    ]
    first = client.get("/changes", params={"pattern": "users/.*", "limit": 2}).json()
    assert [e["seq"] for e in first["events"]] == [1, 3] and first["last_seq"] == 3
    rest = client.get("/changes", params={"pattern": "users/.*", "since": first["last_seq"]}).json()
    assert [e["seq"] for e in rest["events"]] == [4] and rest["last_seq"] == 6  # scanned past 5, 6


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        ({"since": "-1"}, "bad_request", "since must be a seq"),
        ({"since": "abc"}, "bad_request", "since must be a seq"),
        ({"type": "UPSERT"}, "invalid_stream_config", "unknown event type 'UPSERT'"),
        ({"pattern": "(a)\\1"}, "invalid_pattern", "not a valid RE2"),
        ({"limit": "0"}, "bad_request", "limit"),
        ({"feed": "continuous"}, "bad_request", "feed"),
    ],
)
def test_bad_input(client: TestClient, params: dict[str, str], code: str, message: str) -> None:
    response = client.get("/changes", params=params)
    assert response.status_code == 400
    assert response.json()["error"] == code and message in response.json()["message"]


def test_compacted_is_410_with_oldest_seq(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(node={"retention": {"max_events": 2, "compaction_interval": "1h"}})
    app = create_app(settings)
    with LocalClient(app) as client:
        for i in range(5):
            client.put(f"/kv/k{i}", content=b"v")
        app.node.store.compact_sync()
        response = client.get("/changes", params={"since": 1})
        assert response.status_code == 410
        body = response.json()
        assert (
            body["error"] == "compacted"
            and body["oldest_seq"] == 4
            and "since=3" in body["message"]
        )
        assert client.get("/changes", params={"since": 3}).status_code == 200


def test_long_poll_waits_for_the_next_matching_event(client: TestClient) -> None:
    client.put("/kv/a", content=b"1")

    def later() -> None:
        time.sleep(0.2)
        client.put("/kv/other", content=b"x")
        client.put("/kv/wanted", content=b"y")

    threading.Thread(target=later).start()
    started = time.monotonic()
    page = client.get(
        "/changes",
        params={"since": 1, "feed": "longpoll", "pattern": "wanted", "timeout_ms": 10_000},
    ).json()
    assert time.monotonic() - started >= 0.15
    assert [e["key"] for e in page["events"]] == ["wanted"] and page["last_seq"] == 3


def test_long_poll_times_out_with_the_position(client: TestClient) -> None:
    client.put("/kv/a", content=b"1")
    page = client.get(
        "/changes", params={"since": 0, "pattern": "nothing", "feed": "longpoll", "timeout_ms": 100}
    ).json()
    assert page == {"events": [], "last_seq": 1}


def read_sse(
    client: TestClient, params: dict[str, object], headers: dict[str, str] | None = None
) -> list[dict[str, str]]:
    messages, current = [], {}
    with client.stream(
        "GET", "/changes", params={"feed": "sse", **params}, headers=headers or {}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                messages.append(current)
                current = {}
                continue
            field, _, value = line.partition(": ")
            current[field] = value
    return messages


def test_sse_events_ids_and_last_event_id(client: TestClient) -> None:
    fill(client)
    messages = read_sse(client, {"limit": 3})
    changes = [m for m in messages if m["event"] == "change"]
    assert [m["id"] for m in changes] == ["1", "2", "3"]
    resumed = read_sse(client, {"limit": 2}, headers={"last-event-id": "4"})
    assert [m["id"] for m in resumed if m["event"] == "change"] == ["5", "6"]


def test_sse_announces_caught_up_and_progress(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(server={"subscriptions": {"progress_interval": "50ms"}})
    with LocalClient(create_app(settings)) as client:
        client.put("/kv/a", content=b"1")

        def later() -> None:
            time.sleep(0.3)
            client.put("/kv/b", content=b"2")

        writer = threading.Thread(target=later)
        writer.start()
        messages = read_sse(client, {"limit": 2, "pattern": "[ab]"})
        writer.join()
        kinds = [m["event"] for m in messages]
        assert kinds[0] == "change" and kinds[1] == "caught_up" and "progress" in kinds
        assert kinds[-1] == "change" and messages[-1]["id"] == "2"
        assert messages[1]["id"] == "1" and messages[1]["data"] == '{"seq":1}'
