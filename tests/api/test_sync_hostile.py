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


def _with_item(**changes: Any) -> bytes:
    """An apply body whose one item differs from a good one by ``changes``."""
    fields = ["seq", "key", "deleted", "value", "content_type", "hlc", "origin", "vector", "txn"]
    good = dict(zip(fields, [1, "k", False, b"v", None, 5, "peer", {"peer": 5}, 1], strict=True))
    return msgpack.packb(_apply_body(items=[list({**good, **changes}.values())]))


FAR = (2**47) << 16  # an hlc some 4,000 years ahead
HOSTILE: list[tuple[str, bytes]] = [
    ("not msgpack", b"\xc1\xc1\xc1"),
    ("empty", b""),
    ("an array", msgpack.packb([1, 2, 3])),
    ("no source", msgpack.packb({k: v for k, v in _apply_body().items() if k != "source"})),
    ("bad node id", msgpack.packb(_apply_body(source="../etc"))),
    ("negative seq", msgpack.packb(_apply_body(prev_seq=-1))),
    ("seq as text", msgpack.packb(_apply_body(last_seq="1"))),
    ("prev after last", msgpack.packb(_apply_body(prev_seq=5, last_seq=1))),
    ("unknown mode", msgpack.packb(_apply_body(mode="drop_tables"))),
    ("short item", msgpack.packb(_apply_body(items=[[1, "k"]]))),
    ("item not a list", msgpack.packb(_apply_body(items=["x"]))),
    ("from this node", msgpack.packb(_apply_body(source="api-node"))),
    ("snapshot_end with items", msgpack.packb(_apply_body(mode="snapshot_end"))),
    ("hlc out of range", _with_item(hlc=2**64 - 1, vector={"peer": 2**64 - 1})),
    ("far future", _with_item(hlc=FAR, vector={"peer": FAR})),
    ("reserved key", _with_item(key="_sync/x")),
    ("key too long", _with_item(key="k" * 600)),
    ("vector without its dot", _with_item(vector={"peer": 4})),
    ("empty vector", _with_item(vector={})),
    ("vector key as bytes", _with_item(vector={b"peer": 5})),
    ("vector hlc as bool", _with_item(vector={"peer": True})),
    ("put without a value", _with_item(value=None)),
    ("value not bytes", _with_item(value=42)),
    ("origin not a string", _with_item(origin=["peer"])),
    ("seq as bool", _with_item(seq=True)),
    ("deleted as int", _with_item(deleted=0)),
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
