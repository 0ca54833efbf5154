"""``/sync`` over HTTP: the replication role, malformed and hostile batches (4xx, nothing
changes), gaps and skew with their codes, status, conflicts and processors made through the
API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
from fastapi.testclient import TestClient

from api import Settings, create_app
from kvdb.hlc import wall_clock_ms
from sync.protocol import CONTENT_TYPE, decode_apply_result, decode_welcome

READ, REPL, ADMIN = "r" * 20, "p" * 20, "a" * 20
TOKENS = {
    "server": {
        "tokens": [
            {"token": READ, "role": "read"},
            {"token": REPL, "role": "replication"},
            {"token": ADMIN, "role": "admin"},
        ]
    }
}


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def mp(token: str) -> dict[str, str]:
    """Headers of a msgpack body."""
    return {**auth(token), "content-type": CONTENT_TYPE}


def hlc(offset_ms: int = 0) -> int:
    return (wall_clock_ms() + offset_ms) << 16


def batch(prev: int, last: int, items: list[list[Any]], **extra: Any) -> bytes:
    doc = {"source": "b", "source_epoch": "eb", "prev_seq": prev, "last_seq": last,
           "items": items, **extra}  # fmt: skip
    return msgpack.packb(doc, use_bin_type=True)  # type: ignore[no-any-return]


def item(seq: int, key: str, version: int, value: bytes = b"v") -> list[Any]:
    return [seq, key, False, value, "text/plain", version, "b", {"b": version}, seq]


@pytest.fixture
def node(settings_factory: Callable[..., Settings]) -> TestClient:
    with TestClient(create_app(settings_factory(**TOKENS))) as client:
        yield client  # type: ignore[misc]


def test_only_the_replication_role_or_admin_opens_sync(node: TestClient) -> None:
    hello = msgpack.packb({"source": "b", "source_epoch": "eb", "target": "api-node"})
    assert node.post("/sync/handshake", content=hello).status_code == 401
    assert node.post("/sync/handshake", content=hello, headers=mp(READ)).status_code == 403
    for token in (REPL, ADMIN):
        reply = node.post("/sync/handshake", content=hello, headers=mp(token))
        assert reply.status_code == 200
        welcome = decode_welcome(reply.content)
        assert (welcome.node_id, welcome.checkpoint) == ("api-node", 0)
    assert node.get("/sync/status", headers=auth(READ)).status_code == 403
    assert node.get("/sync/status", headers=auth(REPL)).status_code == 200
    # and a replication token opens nothing else
    assert node.get("/kv/anything", headers=auth(REPL)).status_code == 403
    assert node.get("/stats", headers=auth(REPL)).status_code == 403


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\xc1not msgpack", "invalid_sync_message"),
        (msgpack.packb([1, 2, 3]), "invalid_sync_message"),
        (batch(0, 1, [[1, "k"]]), "invalid_sync_message"),
        (batch(0, 1, [item(1, "k", hlc())], mode="rewrite-history"), "invalid_sync_message"),
        (
            batch(0, 1, [[1, "k", False, "not bytes", None, hlc(), "b", {"b": hlc()}, 1]]),
            "invalid_sync_message",
        ),
        (batch(0, 1, [[1, "k", False, b"v", None, -5, "b", {"b": 1}, 1]]), "invalid_sync_message"),
        (batch(0, 1, [item(1, "_sync/conflicts/forged", hlc())]), "reserved_key"),
        (batch(0, 1, [item(1, "k" * 600, hlc())]), "invalid_key"),
        (batch(2, 1, [item(1, "k", hlc())]), "invalid_request"),
        (
            msgpack.packb(
                {**msgpack.unpackb(batch(0, 1, [item(1, "k", hlc())])), "source": "api-node"}
            ),
            "invalid_request",
        ),
        (batch(0, 1, [[1, "k", False, b"v", None, 5, "b", {"b": 4}, 1]]), "invalid_request"),
    ],
)
def test_malformed_and_hostile_batches_change_nothing(
    node: TestClient, body: bytes, code: str
) -> None:
    reply = node.post("/sync/apply", content=body, headers=mp(REPL))
    assert 400 <= reply.status_code < 500 and reply.json()["error"] == code
    assert node.get("/stats", headers=auth(ADMIN)).json()["last_seq"] == 0


def test_gaps_replays_and_skew(node: TestClient) -> None:
    first = node.post("/sync/apply", content=batch(0, 1, [item(1, "k", hlc())]), headers=mp(REPL))
    assert first.status_code == 200 and decode_apply_result(first.content).checkpoint == 1
    replay = node.post("/sync/apply", content=batch(0, 1, [item(1, "k", hlc())]), headers=mp(REPL))
    assert decode_apply_result(replay.content).duplicate
    gap = node.post("/sync/apply", content=batch(5, 6, [item(6, "j", hlc())]), headers=mp(REPL))
    assert gap.status_code == 409 and gap.json()["error"] == "sequence_gap"
    assert gap.json()["checkpoint"] == 1
    ahead = node.post(
        "/sync/apply", content=batch(1, 2, [item(2, "j", hlc(600_000))]), headers=mp(REPL)
    )
    assert ahead.status_code == 422 and ahead.json()["error"] == "clock_skew"
    assert ahead.json()["ahead_ms"] >= 599_000
    assert node.get("/kv/j", headers=auth(ADMIN)).status_code == 404
    assert node.get("/stats", headers=auth(ADMIN)).json()["last_seq"] == 1


def test_an_oversized_batch_is_refused_by_its_length(node: TestClient) -> None:
    huge = b"x" * (node.app.node.store.limits.max_batch_bytes + 2 * 1024 * 1024)  # type: ignore[attr-defined]
    reply = node.post("/sync/apply", content=huge, headers=mp(REPL))
    assert reply.status_code == 413


def test_status_conflicts_and_processors(node: TestClient, tmp_path: Path) -> None:
    node.put("/kv/doc", content=b"mine", headers=auth(ADMIN))
    later = hlc(1000)
    conflict = node.post(
        "/sync/apply", content=batch(0, 1, [item(1, "doc", later, b"theirs")]), headers=mp(REPL)
    )
    assert decode_apply_result(conflict.content).conflicts == 1
    listed = node.get("/sync/conflicts?since=0", headers=auth(REPL)).json()
    [record] = listed["conflicts"]
    assert (record["key"], record["policy"], record["winner"]) == ("doc", "lww", f"{later}.b")
    assert listed["last_seq"] == record["seq"]
    assert node.get(f"/sync/conflicts?since={record['seq']}", headers=auth(REPL)).json() == {
        "conflicts": [], "last_seq": record["seq"]}  # fmt: skip
    assert node.get("/sync/conflicts?since=-1", headers=auth(REPL)).status_code == 400
    metrics = node.get("/metrics", headers=auth(ADMIN)).text
    assert "kvdb_sync_conflicts_recorded_total 1.0" in metrics

    target = {"node_id": "far", "endpoints": ["http://127.0.0.1:9"]}
    made = node.post("/sync/processors", json={"name": "out", "targets": [target]},
                     headers=auth(REPL))  # fmt: skip
    assert made.status_code == 201
    again = node.post("/sync/processors", json={"name": "out", "targets": [target]},
                      headers=auth(REPL))  # fmt: skip
    assert again.status_code == 409 and again.json()["error"] == "sync_processor_exists"
    bad = node.post("/sync/processors", json={"name": "x", "targets": [{
        "node_id": "api-node", "endpoints": ["http://127.0.0.1:9"]}]}, headers=auth(REPL))  # fmt: skip
    assert bad.status_code == 400 and "this node" in bad.json()["message"]
    status = node.get("/sync/status", headers=auth(REPL)).json()
    [processor] = status["processors"]
    assert processor["name"] == "out" and processor["targets"][0]["node_id"] == "far"
    assert node.post("/sync/processors/out/pause", headers=auth(REPL)).json()["targets"][0][
        "state"] == "paused"  # fmt: skip
    assert node.delete("/sync/processors/out", headers=auth(REPL)).status_code == 200
    assert node.get("/sync/processors/out", headers=auth(REPL)).status_code == 404
