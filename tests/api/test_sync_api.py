"""``/sync`` over the ASGI test client: the read-only versioned snapshot, the replication role,
and ``/sync/apply`` bodies that are malformed or hostile (a 4xx, nothing applied)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from fastapi.testclient import TestClient

from api import Settings, create_app

REPLICATION = "replication-token-0123456789"
WRITE = "write-token-0123456789"
MSGPACK = {"content-type": "application/msgpack"}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def node(settings_factory: Callable[..., Settings]) -> TestClient:
    tokens = [{"token": REPLICATION, "role": "replication"}, {"token": WRITE, "role": "write"}]
    return TestClient(create_app(settings_factory(server={"tokens": tokens})))


def snapshot(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/sync/snapshot", params=params, headers=bearer(REPLICATION))
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def test_snapshot_lists_versions_and_tombstones_in_key_order(node: TestClient) -> None:
    with node as client:
        w = bearer(WRITE)
        version_b = client.put("/kv/b", content=b"2", headers=w).json()["version"]
        client.put("/kv/a", content=b"\xff\x00", headers={**w, "content-type": "application/x"})
        client.put("/kv/c", content=b"3", headers=w)
        client.delete("/kv/c", headers=w)
        doc = snapshot(client)
        assert doc["next"] is None
        items = {item["key"]: item for item in doc["items"]}
        assert [item["key"] for item in doc["items"]] == ["a", "b", "c"]  # no _reserved keys
        hlc, origin = version_b.split(".")
        assert items["b"] == {
            "key": "b", "deleted": False, "version": version_b, "vector": {origin: hlc},
            "value": "2", "content_type": None,
        }  # fmt: skip
        assert items["a"]["value"] == "/wA=" and items["a"]["encoding"] == "base64"
        assert items["a"]["content_type"] == "application/x"
        assert items["c"]["deleted"] is True and items["c"]["value"] is None
        first = snapshot(client, limit=2)
        assert [item["key"] for item in first["items"]] == ["a", "b"] and first["next"] == "b"
        rest = snapshot(client, after=first["next"], limit=2)
        assert [item["key"] for item in rest["items"]] == ["c"] and rest["next"] is None


def test_snapshot_needs_the_replication_role(node: TestClient) -> None:
    with node as client:
        assert client.get("/sync/snapshot").status_code == 401
        assert client.get("/sync/snapshot", headers=bearer(WRITE)).status_code == 403
        bad_limit = client.get("/sync/snapshot?limit=0", headers=bearer(REPLICATION))
        assert bad_limit.status_code in (400, 422)


def _apply_body(**fields: Any) -> dict[str, Any]:
    hlc = 1_700_000_000_000 << 16
    body: dict[str, Any] = {
        "source": "peer", "source_epoch": "e1", "target_epoch": None, "mode": "log",
        "prev_seq": 0, "last_seq": 1,
        "items": [[1, "k", False, b"v", None, hlc, "peer", {"peer": hlc}, 1]],
    }  # fmt: skip
    body.update(fields)
    return body


HOSTILE: list[tuple[str, bytes]] = [
    ("not msgpack", b"\xc1\xc1\xc1"),
    ("empty", b""),
    ("an array", msgpack.packb([1, 2, 3])),
    ("no source", msgpack.packb({k: v for k, v in _apply_body().items() if k != "source"})),
    ("bad node id", msgpack.packb(_apply_body(source="../etc"))),
    ("negative seq", msgpack.packb(_apply_body(prev_seq=-1))),
    ("seq as text", msgpack.packb(_apply_body(last_seq="1"))),
    (
        "hlc out of range",
        msgpack.packb(
            _apply_body(
                items=[[1, "k", False, b"v", None, 2**64 - 1, "peer", {"peer": 2**64 - 1}, 1]]
            )
        ),
    ),
    ("prev after last", msgpack.packb(_apply_body(prev_seq=5, last_seq=1))),
    ("unknown mode", msgpack.packb(_apply_body(mode="drop_tables"))),
    ("short item", msgpack.packb(_apply_body(items=[[1, "k"]]))),
    ("item not a list", msgpack.packb(_apply_body(items=["x"]))),
    (
        "reserved key",
        msgpack.packb(
            _apply_body(items=[[1, "_sync/x", False, b"v", None, 5, "peer", {"peer": 5}, 1]])
        ),
    ),
    (
        "vector without its dot",
        msgpack.packb(_apply_body(items=[[1, "k", False, b"v", None, 5, "peer", {"peer": 4}, 1]])),
    ),
    (
        "empty vector",
        msgpack.packb(_apply_body(items=[[1, "k", False, b"v", None, 5, "peer", {}, 1]])),
    ),
    (
        "put without a value",
        msgpack.packb(_apply_body(items=[[1, "k", False, None, None, 5, "peer", {"peer": 5}, 1]])),
    ),
    (
        "key too long",
        msgpack.packb(
            _apply_body(items=[[1, "k" * 600, False, b"v", None, 5, "peer", {"peer": 5}, 1]])
        ),
    ),
    (
        "value not bytes",
        msgpack.packb(_apply_body(items=[[1, "k", False, 42, None, 5, "peer", {"peer": 5}, 1]])),
    ),
    ("origin not a string", msgpack.packb(_apply_body(items=[[1, "k", False, b"v", None, 5, ["peer"], {"peer": 5}, 1]]))),
    ("vector key as bytes", msgpack.packb(_apply_body(items=[[1, "k", False, b"v", None, 5, "peer", {b"peer": 5}, 1]]))),
    ("vector hlc as bool", msgpack.packb(_apply_body(items=[[1, "k", False, b"v", None, 5, "peer", {"peer": True}, 1]]))),
    ("seq as bool", msgpack.packb(_apply_body(items=[[True, "k", False, b"v", None, 5, "peer", {"peer": 5}, 1]]))),
    ("deleted as int", msgpack.packb(_apply_body(items=[[1, "k", 0, b"v", None, 5, "peer", {"peer": 5}, 1]]))),
    ("from this node", msgpack.packb(_apply_body(source="api-node"))),
    (
        "far future",
        msgpack.packb(
            _apply_body(
                items=[
                    [1, "k", False, b"v", None, (2**47) << 16, "peer", {"peer": (2**47) << 16}, 1]
                ]
            )
        ),
    ),
    ("snapshot_end with items", msgpack.packb(_apply_body(mode="snapshot_end"))),
]


@pytest.mark.parametrize(("name", "body"), HOSTILE, ids=[name for name, _ in HOSTILE])
def test_a_malformed_or_hostile_apply_is_refused_and_changes_nothing(
    node: TestClient, name: str, body: bytes
) -> None:
    with node as client:
        before = client.get("/stats", headers=bearer(WRITE)).json()["last_seq"]
        response = client.post(
            "/sync/apply", content=body, headers={**MSGPACK, **bearer(REPLICATION)}
        )
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
        assert response.json()["message"]
        assert client.get("/stats", headers=bearer(WRITE)).json()["last_seq"] == before
        assert snapshot(client)["items"] == []
        assert client.get("/sync/status", headers=bearer(REPLICATION)).json()["inbound"] == []


def test_a_well_formed_apply_is_applied(node: TestClient) -> None:
    """The control for the hostile cases: the same body, intact, is applied."""
    with node as client:
        body = msgpack.packb(_apply_body())
        response = client.post(
            "/sync/apply", content=body, headers={**MSGPACK, **bearer(REPLICATION)}
        )
        assert response.status_code == 200, response.text
        assert msgpack.unpackb(response.content)["applied"] == 1
        assert [item["key"] for item in snapshot(client)["items"]] == ["k"]
