"""Bearer tokens with roles, and protected mode."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from api import Settings, create_app, load_settings
from api.errors import ConfigError
from api.server.run import check_protected_mode
from tests.api.conftest import LocalClient

READ = "read-token-0123456789"
WRITE = "write-token-0123456789"
ADMIN = "admin-token-0123456789"


@pytest.fixture
def secured(settings_factory: Callable[..., Settings]) -> TestClient:
    tokens = [
        {"token": READ, "role": "read"},
        {"token": WRITE, "role": "write"},
        {"token": ADMIN, "role": "admin"},
    ]
    return LocalClient(create_app(settings_factory(server={"tokens": tokens})))


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_requests_without_a_token_are_refused(secured: TestClient) -> None:
    with secured as client:
        response = client.get("/kv/k")
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in response.json()["message"]
        assert client.get("/kv/k", headers=bearer("wrong-token")).status_code == 401
        assert client.get("/kv/k", headers={"authorization": "Basic abc"}).status_code == 401
        assert client.get("/stats").status_code == 401
        assert client.get("/metrics").status_code == 401
        assert client.get("/health").status_code == 200  # liveness needs no token


def test_roles_are_ordered(secured: TestClient) -> None:
    with secured as client:
        forbidden = client.put("/kv/k", content=b"v", headers=bearer(READ))
        assert forbidden.status_code == 403
        assert (
            forbidden.json()["message"] == "this token has the read role; this request needs write"
        )
        assert client.put("/kv/k", content=b"v", headers=bearer(WRITE)).status_code == 200
        assert client.put("/kv/k", content=b"v", headers=bearer(ADMIN)).status_code == 200
        assert client.get("/kv/k", headers=bearer(READ)).status_code == 200
        assert client.get("/kv", headers=bearer(READ)).status_code == 200
        batch = {"ops": [{"op": "delete", "key": "k"}]}
        assert client.post("/kv/_batch", json=batch, headers=bearer(READ)).status_code == 403
        assert client.post("/kv/_batch", json=batch, headers=bearer(WRITE)).status_code == 200
        assert client.get("/stats", headers=bearer(READ)).status_code == 200


def test_short_tokens_are_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match=r"server.tokens.0.token: a token must be at least 16 characters"
    ) as info:
        load_settings(overrides={"server": {"tokens": [{"token": "short", "role": "read"}]}})
    assert "short" not in str(info.value)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_protected_mode_refuses_remote_binds_without_tokens(host: str) -> None:
    with pytest.raises(ConfigError, match="refusing to listen"):
        check_protected_mode(load_settings(overrides={"server": {"host": host}}).server)


@pytest.mark.parametrize(
    "server",
    [
        {"host": "127.0.0.1"},
        {"host": "localhost"},
        {"host": "::1"},
        {"host": "0.0.0.0", "allow_unauthenticated_remote": True},
        {"host": "0.0.0.0", "tokens": [{"token": ADMIN, "role": "admin"}]},
    ],
)
def test_protected_mode_allows(server: dict[str, object]) -> None:
    check_protected_mode(load_settings(overrides={"server": server}).server)


def test_consuming_a_named_stream_needs_write(secured: TestClient) -> None:
    """A read token may subscribe, but not attach a consumer (a durable checkpoint pins the
    change log) nor acknowledge (moving a checkpoint makes its application skip events)."""
    with secured as client:
        stream = {"name": "jobs", "enable_persistence": True, "start_from": "earliest"}
        assert client.post("/streams", json=stream, headers=bearer(ADMIN)).status_code == 201
        client.put("/kv/j1", content=b"v", headers=bearer(WRITE))
        url = "/ws/changes?stream=jobs&consumer=billing"
        with client.websocket_connect(f"{url}&access_token={READ}") as ws:
            error = ws.receive_json()
            assert (error["type"], error["code"]) == ("error", "forbidden")
            assert "needs write" in error["message"]
        store = client.app.node.store  # type: ignore[attr-defined]
        assert [c.name for c in store.list_checkpoints() if c.name.startswith("stream/")] == []
        with client.websocket_connect(f"/ws/changes?since=0&access_token={READ}") as ws:
            assert ws.receive_json()["type"] == "events"  # ad-hoc subscriptions: read
        with client.websocket_connect(f"{url}&access_token={WRITE}") as ws:
            assert ws.receive_json()["events"][0]["key"] == "j1"
            ws.send_json({"ack": 1})
            ws.send_json({"type": "ping"})
            while ws.receive_json()["type"] != "pong":  # the ack is processed before the ping
                pass
        stats = client.get("/streams/jobs/stats", headers=bearer(READ)).json()
        (billing,) = stats["consumers"]
        assert billing["name"] == "billing" and billing["attached"] is False
        assert (billing["state"], billing["checkpoint"], billing["pins"]) == ("detached", 1, 1)


def test_a_token_in_the_url_only_where_no_header_can_be_sent(secured: TestClient) -> None:
    with secured as client:
        refused = client.get(f"/stats?access_token={READ}")
        assert refused.status_code == 400 and refused.json()["error"] == "token_in_url"
        assert "Authorization: Bearer" in refused.json()["message"]
        assert client.get(f"/changes?since=0&access_token={READ}").status_code == 400
        client.put("/kv/k", content=b"v", headers=bearer(WRITE))
        sse = client.get(f"/changes?feed=sse&since=0&limit=1&access_token={READ}")
        assert sse.status_code == 200  # EventSource cannot send headers
        with client.websocket_connect(f"/ws/changes?since=now&access_token={READ}") as ws:
            assert ws.receive_json()["type"] == "caught_up"


def test_tokens_in_urls_are_redacted_from_the_server_logs() -> None:
    from api.server.logs import TokenRedactor

    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5", f"/ws/changes?since=0&access_token={READ}&x=1"), None,
    )  # fmt: skip
    TokenRedactor().filter(record)
    assert record.getMessage().endswith(
        '"WebSocket /ws/changes?since=0&access_token=[redacted]&x=1" [accepted]'
    )
