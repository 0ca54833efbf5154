"""The /kv endpoints, in-process: every operation and every error."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

import msgpack
import pytest
from fastapi.testclient import TestClient

from api import Settings, create_app
from tests.api.conftest import LocalClient


def test_put_get_delete_round_trip(client: TestClient) -> None:
    put = client.put(
        "/kv/users/42", content=b'{"name":"ada"}', headers={"content-type": "application/json"}
    )
    assert put.status_code == 200
    body = put.json()
    assert body["key"] == "users/42" and body["seq"] == 1
    assert put.headers["etag"] == f'"{body["version"]}"'

    got = client.get("/kv/users/42")
    assert got.status_code == 200
    assert got.content == b'{"name":"ada"}'
    assert got.headers["content-type"] == "application/json"
    assert got.headers["etag"] == put.headers["etag"]
    assert got.headers["x-kvdb-origin"] == "api-node"

    deleted = client.delete("/kv/users/42")
    assert deleted.status_code == 200 and deleted.json() == {"key": "users/42", "seq": 2}
    missing = client.get("/kv/users/42")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "message": "key 'users/42' does not exist"}
    assert client.delete("/kv/users/42").status_code == 404


def test_values_are_bytes_with_their_content_type(client: TestClient) -> None:
    blob = bytes(range(256))
    client.put("/kv/blob", content=blob, headers={"content-type": "image/png"})
    got = client.get("/kv/blob")
    assert got.content == blob and got.headers["content-type"] == "image/png"
    client.put("/kv/untyped", content=b"x", headers={"content-type": ""})
    assert client.get("/kv/untyped").headers["content-type"] == "application/octet-stream"


def test_head_and_conditional_get(client: TestClient) -> None:
    etag = client.put("/kv/k", content=b"value").headers["etag"]
    head = client.head("/kv/k")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == "5"
    assert client.get("/kv/k", headers={"if-none-match": etag}).status_code == 304
    assert client.get("/kv/k", headers={"if-none-match": '"1"'}).status_code == 200


def test_keys_with_slashes_unicode_and_escapes(client: TestClient) -> None:
    for key, path in [
        ("a/b/c", "/kv/a/b/c"),
        ("ключ/ü", "/kv/%D0%BA%D0%BB%D1%8E%D1%87/%C3%BC"),
        ("with space?&#", "/kv/with%20space%3F%26%23"),
    ]:
        assert client.put(path, content=key.encode()).json()["key"] == key
        assert client.get(path).content == key.encode()


def test_optimistic_concurrency(client: TestClient) -> None:
    created = client.put("/kv/doc", content=b"v1", headers={"if-none-match": "*"})
    assert created.status_code == 200
    again = client.put("/kv/doc", content=b"v1", headers={"if-none-match": "*"})
    assert again.status_code == 412
    assert again.json()["error"] == "precondition_failed"
    assert again.json()["current_version"] == created.json()["version"]

    etag = created.headers["etag"]
    stale = client.put("/kv/doc", content=b"v2", headers={"if-match": '"12345.test-node"'})
    assert stale.status_code == 412
    updated = client.put("/kv/doc", content=b"v2", headers={"if-match": etag})
    assert updated.status_code == 200
    assert client.delete("/kv/doc", headers={"if-match": etag}).status_code == 412
    assert (
        client.delete("/kv/doc", headers={"if-match": updated.json()["version"]}).status_code == 200
    )


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"if-match": "abc"}, "If-Match must be '\\*' or entity tags"),
        ({"if-none-match": '"1"'}, "only '\\*'"),
    ],
)
def test_bad_condition_headers(client: TestClient, headers: dict[str, str], message: str) -> None:
    response = client.put("/kv/k", content=b"v", headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert re.search(message, response.json()["message"])


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/kv/_system", "reserved_key"),
        ("/kv/" + "k" * 512, "invalid_key"),
        ("/kv/%ED%A0%80", "invalid_key"),
    ],
)
def test_bad_keys(client: TestClient, path: str, code: str) -> None:
    response = client.put(path, content=b"v")
    assert response.status_code == 400 and response.json()["error"] == code


def test_unsupported_methods(client: TestClient) -> None:
    response = client.post("/kv/k", content=b"v")
    assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD, PUT, DELETE"
    assert client.put("/kv/_batch", content=b"{}").headers["allow"] == "POST"
    assert client.delete("/kv").status_code == 405
    no_key = client.put("/kv/", content=b"v")
    assert no_key.status_code == 405 and "PUT /kv/{key}" in no_key.json()["message"]


def test_scan_with_prefix_range_and_cursor(client: TestClient) -> None:
    for i in range(12):
        client.put(f"/kv/item/{i:02d}", content=f"v{i}".encode())
    client.put("/kv/other", content=b"x")
    client.put("/kv/item/bin", content=b"\xff\xfe")
    first = client.get("/kv", params={"prefix": "item/", "limit": 5}).json()
    assert [i["key"] for i in first["items"]] == [f"item/{i:02d}" for i in range(5)]
    assert first["items"][0]["value"] == "v0" and first["next"]
    keys = [i["key"] for i in first["items"]]
    cursor = first["next"]
    while cursor:
        page = client.get("/kv", params={"prefix": "item/", "limit": 5, "cursor": cursor}).json()
        keys += [i["key"] for i in page["items"]]
        cursor = page["next"]
        if page["items"] and page["items"][-1]["key"] == "item/bin":
            assert page["items"][-1]["encoding"] == "base64"
            assert base64.b64decode(page["items"][-1]["value"]) == b"\xff\xfe"
    assert len(keys) == 13 and "other" not in keys
    ranged = client.get("/kv", params={"start": "item/10", "end": "item/bin"}).json()
    assert [i["key"] for i in ranged["items"]] == ["item/10", "item/11"]


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "limit=10001", "cursor=%21%21"])
def test_bad_scan_parameters(client: TestClient, query: str) -> None:
    response = client.get(f"/kv?{query}")
    assert response.status_code == 400, response.text


def test_json_batch_is_atomic(client: TestClient) -> None:
    client.put("/kv/gone", content=b"x")
    ops = [
        {"op": "put", "key": "a", "value": "1"},
        {
            "op": "put",
            "key": "b",
            "value": base64.b64encode(b"\x00\xff").decode(),
            "encoding": "base64",
        },
        {"op": "delete", "key": "gone"},
        {"op": "delete", "key": "never-existed"},
    ]
    result = client.post("/kv/_batch", json={"ops": ops}).json()
    assert result["txn"] == 2 and result["last_seq"] == 4
    assert [r["seq"] for r in result["results"]] == [2, 3, 4, None]
    assert client.get("/kv/b").content == b"\x00\xff"

    failing = [
        {"op": "put", "key": "c", "value": "1"},
        {"op": "put", "key": "a", "value": "2", "if_absent": True},
    ]
    response = client.post("/kv/_batch", json={"ops": failing})
    assert response.status_code == 412
    assert client.get("/kv/c").status_code == 404


def test_msgpack_batch_carries_raw_bytes(client: TestClient) -> None:
    body = msgpack.packb(
        {"ops": [{"op": "put", "key": "raw", "value": b"\x80\x81"}]}, use_bin_type=True
    )
    response = client.post(
        "/kv/_batch", content=body, headers={"content-type": "application/msgpack"}
    )
    assert response.status_code == 200
    assert client.get("/kv/raw").content == b"\x80\x81"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", '{"ops": \\[...\\]}'),
        (b'{"ops": [{"op": "upsert", "key": "a"}]}', "ops\\[0\\].op must be 'put' or 'delete'"),
        (b'{"ops": [{"op": "put", "key": 1, "value": "x"}]}', "ops\\[0\\].key must be a string"),
        (b'{"ops": [{"op": "put", "key": "a"}]}', "ops\\[0\\].value must be"),
        (
            b'{"ops": [{"op": "put", "key": "a", "value": "!", "encoding": "base64"}]}',
            "not valid base64",
        ),
        (b'{"ops": [{"op": "delete", "key": "_x"}]}', "reserved"),
    ],
)
def test_bad_batches(client: TestClient, body: bytes, message: str) -> None:
    response = client.post("/kv/_batch", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert re.search(message, response.json()["message"]), response.json()


def test_limits_give_413_and_name_the_setting(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(node={"limits": {"max_value_size": "1KiB", "max_batch_ops": 2}})
    with LocalClient(create_app(settings)) as client:
        too_big = client.put("/kv/k", content=b"x" * 1025)
        assert too_big.status_code == 413
        assert "(node.limits.max_value_size)" in too_big.json()["message"]
        assert too_big.json()["setting"] == "node.limits.max_value_size"
        assert client.put("/kv/k", content=b"x" * 1024).status_code == 200
        ops = [{"op": "delete", "key": f"k{i}"} for i in range(3)]
        response = client.post("/kv/_batch", json={"ops": ops})
        assert response.status_code == 413 and response.json()["error"] == "batch_too_large"
        assert response.json()["limit"] == 2
        assert "(node.limits.max_batch_ops)" in response.json()["message"]  # #17
        assert response.json()["setting"] == "node.limits.max_batch_ops"


def test_full_store_is_507(settings_factory: Callable[..., Settings]) -> None:
    node = {"map_size": "1MiB", "max_map_size": "1MiB", "space_headroom": "256KiB"}
    settings = settings_factory(node=node)
    with LocalClient(create_app(settings)) as client:
        statuses = {client.put(f"/kv/k{i}", content=b"x" * 50_000).status_code for i in range(40)}
        assert statuses == {200, 507}
        response = client.put("/kv/more", content=b"x" * 50_000)
        assert response.json()["error"] == "storage_full"
        assert "max_map_size" in response.json()["message"]
        assert client.get("/kv/k0").status_code == 200
        # space is reclaimed through the API: deletes still work (#14)
        assert {client.delete(f"/kv/k{i}").status_code for i in range(3)} == {200}


@pytest.mark.parametrize(
    "tag",
    [
        '"1.api-node"',  # an old version
        '"99999999999999999999999.api-node"',  # out of any hlc's range
        '"12345"',  # a tag that is no kvdb version
        '"abc"',
        'W/"{current}"',  # weak: If-Match compares strongly
        '"abc", W/"x"',
    ],
)
def test_if_match_with_a_well_formed_tag_that_is_not_current_is_412(
    client: TestClient, tag: str
) -> None:
    """RFC 9110 13.1.1: a well-formed If-Match that does not match is 412, not 400 (#16)."""
    current = client.put("/kv/doc", content=b"v1").json()["version"]
    for method in ("PUT", "DELETE"):
        response = client.request(
            method, "/kv/doc", content=b"v2", headers={"if-match": tag.format(current=current)}
        )
        assert response.status_code == 412, (method, response.text)
        assert response.json()["current_version"] == current
    ops = [{"op": "put", "key": "doc", "value": "v3", "if_version": "99999999999999999999.x"}]
    assert client.post("/kv/_batch", json={"ops": ops}).status_code == 412


def test_if_match_star_and_lists(client: TestClient) -> None:
    assert client.put("/kv/new", content=b"v", headers={"if-match": "*"}).status_code == 412
    client.put("/kv/doc", content=b"v1")
    assert client.put("/kv/doc", content=b"v2", headers={"if-match": "*"}).status_code == 200
    current = client.get("/kv/doc").headers["etag"]
    listed = client.put("/kv/doc", content=b"v3", headers={"if-match": f'"abc", {current}'})
    assert listed.status_code == 200
    two = client.put("/kv/doc", content=b"v4", headers={"if-match": '"1.a", "2.b"'})
    assert two.status_code == 400 and "one version" in two.json()["message"]
    assert client.delete("/kv/doc", headers={"if-match": "*"}).status_code == 200
    assert client.delete("/kv/doc", headers={"if-match": "*"}).status_code == 412
