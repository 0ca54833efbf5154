"""Malformed input is a 400 with the usual JSON error, never a 500, a cut stream or a silent
close (#7); a resume position past the head is refused, never echoed back (#8)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

HUGE = "18446744073709551616"  # 2**64: past any seq


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/kv?limit=²", "bad_request"),
        ("/kv?limit=%EF%BC%91", "bad_request"),  # a full-width digit one
        ("/kv?cursor=garbage", "invalid_request"),
        ("/kv?cursor=%C3%A9t%C3%A9", "invalid_request"),
        ("/changes?since=²", "bad_request"),
        ("/changes?limit=²", "bad_request"),
        (f"/changes?since={HUGE}", "future_seq"),
        (f"/changes?since={HUGE}&feed=sse", "future_seq"),
        (f"/changes?since={HUGE}&feed=longpoll&timeout_ms=10", "future_seq"),
    ],
)
def test_malformed_queries_are_400(client: TestClient, path: str, code: str) -> None:
    client.put("/kv/k", content=b"v")
    response = client.get(path)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == code and response.json()["message"]


@pytest.mark.parametrize("since", ["²", HUGE, "3"])
def test_websocket_says_why_before_it_closes(client: TestClient, since: str) -> None:
    client.put("/kv/k", content=b"v")
    with client.websocket_connect(f"/ws/changes?since={since}") as ws:
        error = ws.receive_json()
        assert error["type"] == "error" and error["code"] in ("bad_request", "future_seq")
        assert ws.receive()["type"] == "websocket.close"


def test_a_cursor_from_a_scan_still_pages(client: TestClient) -> None:
    for key in ("a", "é", "z"):
        client.put(f"/kv/{key}", content=b"v")
    first = client.get("/kv?limit=1").json()
    second = client.get("/kv", params={"limit": 1, "cursor": first["next"]}).json()
    assert [first["items"][0]["key"], second["items"][0]["key"]] == ["a", "z"]  # byte order


@pytest.mark.parametrize("depth", [33, 100, 1000, 20_000])
def test_deeply_nested_sql_is_400(client: TestClient, depth: int) -> None:
    sql = f"CREATE PIPELINE p AS SELECT {'(' * depth}1{')' * depth} AS x FROM t;"
    response = client.post("/sql", json={"sql": sql})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "sql_parse_error"
    assert "nests too deeply" in response.json()["message"]


def test_a_very_long_expression_is_400(client: TestClient) -> None:
    client.post("/sql", json={"sql": "CREATE STREAM t (x INT) WITH (key_pattern = 't/.*');"})
    sql = f"CREATE PIPELINE p AS SELECT {' + '.join(['x'] * 5000)} AS y FROM t;"
    response = client.post("/sql", json={"sql": sql})
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("sql_")


# -- resume positions from the future (#8) --------------------------------------------------


def test_a_future_since_is_refused_with_the_head(client: TestClient) -> None:
    for i in range(3):
        client.put(f"/kv/k{i}", content=b"v")
    assert client.get("/changes?since=3").json() == {"events": [], "last_seq": 3}
    for query in ("since=4", "since=4&feed=longpoll&timeout_ms=10", "since=4&feed=sse"):
        response = client.get(f"/changes?{query}")
        assert response.status_code == 400, query
        assert response.json()["error"] == "future_seq"
        assert response.json()["head"] == 3
    sse = client.get("/changes?feed=sse", headers={"last-event-id": "99"})
    assert sse.status_code == 400 and sse.json()["head"] == 3
    with client.websocket_connect("/ws/changes?since=4") as ws:
        error = ws.receive_json()
        assert (error["type"], error["code"], error["head"]) == ("error", "future_seq", 3)
