"""The Python client against a real server on a loopback port."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from api.client import (
    AsyncClient,
    Client,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    PayloadTooLarge,
    PreconditionFailed,
    Unauthorized,
)
from kvdb import Delete, Put
from tests.api.conftest import LiveServer, make_settings


def test_sync_client_round_trip(live_server: LiveServer) -> None:
    with Client(live_server.url) as kv:
        written = kv.put("users/1", '{"name": "ada"}', content_type="application/json")
        assert written.seq == 1 and written.key == "users/1"
        item = kv.get("users/1")
        assert item is not None
        assert (item.text, item.version, item.content_type) == (
            '{"name": "ada"}',
            written.version,
            "application/json",
        )
        assert item.origin == "api-node"
        assert kv.get("nobody") is None
        assert kv.delete("users/1") is not None
        assert kv.delete("users/1") is None
        assert kv.health()["last_seq"] == 2


def test_keys_needing_escapes_and_binary_values(live_server: LiveServer) -> None:
    with Client(live_server.url) as kv:
        for key in ["a b/c?d#e%f", "ключ/значение", "trailing/"]:
            kv.put(key, b"\x00\xff" + key.encode())
            item = kv.get(key)
            assert item is not None and item.value == b"\x00\xff" + key.encode()
        assert {i.key for i in kv.scan_all()} == {"a b/c?d#e%f", "ключ/значение", "trailing/"}


def test_conditional_writes_raise_precondition_failed(live_server: LiveServer) -> None:
    with Client(live_server.url) as kv:
        first = kv.put("doc", "v1", if_absent=True)
        with pytest.raises(PreconditionFailed) as info:
            kv.put("doc", "v2", if_version=first.version._replace(hlc=first.version.hlc + 1))
        assert info.value.status == 412 and info.value.current_version == first.version
        assert kv.put("doc", "v2", if_version=first.version).seq == 2
        with pytest.raises(PreconditionFailed):
            kv.delete("doc", if_version=first.version)


def test_scan_pages_and_batch(live_server: LiveServer) -> None:
    with Client(live_server.url) as kv:
        result = kv.batch([Put(f"p/{i:03d}", b"v") for i in range(250)] + [Put("q", b"\x80")])
        assert result.txn == 1 and result.last_seq == 251
        page = kv.scan(prefix="p/", limit=100)
        assert len(page.items) == 100 and page.next
        assert [i.key for i in kv.scan_all(prefix="p/", page_size=60)] == [
            f"p/{i:03d}" for i in range(250)
        ]
        deleted = kv.batch([Delete("p/000"), Delete("absent")])
        assert deleted.results[1] is None
        binary = kv.get("q")
        assert binary is not None and binary.value == b"\x80"


def test_errors_carry_code_and_message(live_server: LiveServer) -> None:
    with Client(live_server.url) as kv:
        with pytest.raises(InvalidRequest) as info:
            kv.put("_reserved", "x")
        assert info.value.code == "reserved_key" and "reserved" in info.value.message


def test_connection_failure_is_a_client_error(tmp_path: Path) -> None:
    with (
        Client("http://127.0.0.1:9", timeout=2) as kv,
        pytest.raises(ConnectionFailed, match="cannot reach kvdb"),
    ):
        kv.get("k")


async def test_async_client(live_server: LiveServer) -> None:
    async with AsyncClient(live_server.url) as kv:
        written = await kv.put("a", b"1")
        item = await kv.get("a")
        assert item is not None and item.version == written.version
        await kv.batch([Put("b", b"2"), Put("c", b"3")])
        assert [i.key async for i in kv.scan_all(page_size=2)] == ["a", "b", "c"]
        assert (await kv.scan(prefix="b")).items[0].value == b"2"
        assert await kv.delete("a") is not None
        assert await kv.get("a") is None
        assert (await kv.stats())["last_seq"] == 4


def test_tokens_and_limits(tmp_path: Path, settings_factory: Callable[..., object]) -> None:
    token = "writer-token-0123456789"
    settings = make_settings(
        tmp_path,
        server={"tokens": [{"token": token, "role": "write"}, {"token": "r" * 16, "role": "read"}]},
        node={"limits": {"max_value_size": "1KiB"}},
    )
    with LiveServer(settings) as server:  # type: ignore[arg-type]
        with Client(server.url) as anonymous, pytest.raises(Unauthorized):
            anonymous.get("k")
        with Client(server.url, token="r" * 16) as reader, pytest.raises(Forbidden):
            reader.put("k", "v")
        with Client(server.url, token=token) as writer:
            writer.put("k", "v")
            with pytest.raises(PayloadTooLarge):
                writer.put("k", b"x" * 2000)
