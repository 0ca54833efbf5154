"""Stored content types reach response heads: only media types are stored (400 otherwise, on
PUT and in batches, JSON and msgpack), and one stored before that rule is served as octets."""

from __future__ import annotations

import msgpack
import pytest
from fastapi.testclient import TestClient

import kvdb.store
from tests.api.conftest import LiveServer
from tests.api.test_fast_http import connect, read_response, request

INJECTION = "text/plain\r\nSet-Cookie: s=evil"


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        (INJECTION, "is not a media type"),
        ("text/☃", "is not a media type"),
        ("text/" + "x" * 300, "at most 255 bytes"),
        (42, "must be a string"),
        (["text/plain"], "must be a string"),
    ],
)
def test_batch_content_types_are_checked(
    client: TestClient, binary: bool, content_type: object, message: str
) -> None:
    doc = {"ops": [{"op": "put", "key": "a", "value": "1", "content_type": content_type}]}
    if binary:
        body = msgpack.packb(doc, use_bin_type=True)
        headers = {"content-type": "application/msgpack"}
    else:
        body = __import__("orjson").dumps(doc)
        headers = {"content-type": "application/json"}
    response = client.post("/kv/_batch", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_content_type"
    assert "ops[0].content_type" in response.json()["message"]
    assert message in response.json()["message"]
    assert client.get("/kv/a").status_code == 404


def test_put_content_type_header_is_checked(client: TestClient) -> None:
    response = client.put("/kv/k", content=b"v", headers={"content-type": "a/" + "b" * 300})
    assert response.status_code == 400 and response.json()["error"] == "invalid_content_type"
    assert "Content-Type header" in response.json()["message"]
    ok = client.put("/kv/k", content=b"v", headers={"content-type": "text/plain; charset=utf-8"})
    assert ok.status_code == 200
    assert client.get("/kv/k").headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("legacy", [INJECTION, "text/☃", "nonsense"])
def test_a_stored_type_that_is_no_media_type_is_served_as_octets(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, legacy: str
) -> None:
    monkeypatch.setattr(
        kvdb.store, "validate_content_type", lambda value, where="": value, raising=False
    )
    client.app.node.store.put_sync("legacy", b"x", content_type=legacy)  # type: ignore[attr-defined]
    response = client.get("/kv/legacy")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert "set-cookie" not in response.headers


def test_the_fast_path_serves_no_injected_header(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        kvdb.store, "validate_content_type", lambda value, where="": value, raising=False
    )
    live_server.app.node.store.put_sync("legacy", b"x", content_type=INJECTION)
    live_server.app.node.store.put_sync("snow", b"x", content_type="text/☃")
    with connect(live_server) as sock:
        buffer = bytearray()
        for key in ("legacy", "snow"):
            sock.sendall(request("GET", f"/kv/{key}"))
            status, headers, body = read_response(sock, buffer)
            assert (status, body) == (200, b"x")
            assert headers["content-type"] == "application/octet-stream"
            assert "set-cookie" not in headers
