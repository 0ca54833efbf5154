"""The request guard: a web page cannot rebind a name to a node without tokens, nor write to
it or subscribe to it from another origin; JSON bodies need a JSON content type; stored values
cannot run script on the node's origin."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest
from starlette.testclient import WebSocketDenialResponse

from api import Settings, create_app
from tests.api.conftest import LiveServer, LocalClient
from tests.api.test_fast_http import connect, read_response

EVIL = "https://evil.example"
BATCH = b'{"ops": [{"op": "put", "key": "pwned", "value": "1"}]}'
TOKEN = "t" * 24


def raw(live_server: LiveServer, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    with connect(live_server) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        return read_response(sock, bytearray())


# -- Host ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "10.1.2.3", "app.localhost"],
)
def test_local_names_and_addresses_are_served(client: LocalClient, host: str) -> None:
    assert client.get("/kv/k", headers={"host": host}).status_code == 404
    assert client.get("/health", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("path", ["/kv/k", "/kv", "/health", "/changes", "/ui/"])
def test_a_rebinding_name_is_refused(client: LocalClient, path: str) -> None:
    client.put("/kv/k", content=b"secret")
    response = client.get(path, headers={"host": "rebind.evil.example:8080"})
    assert response.status_code == 403
    assert response.json()["error"] == "host_not_allowed"
    assert "server.allowed_hosts" in response.json()["message"]
    assert b"secret" not in response.content


def test_the_fast_path_checks_the_host_too(live_server: LiveServer) -> None:
    live_server.app.node.store.put_sync("k", b"secret")
    for method in ("GET", "PUT", "DELETE"):
        status, _, body = raw(live_server, f"{method} /kv/k HTTP/1.1\nHost: rebind.evil.example\n")
        assert (status, b"host_not_allowed" in body) == (403, True)
    assert raw(live_server, "GET /kv/k HTTP/1.1\nHost: localhost\n")[2] == b"secret"


def test_allowed_hosts(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(server={"allowed_hosts": ["kvdb.example.com", ".corp.example"]})
    with LocalClient(create_app(settings)) as client:
        for host in ("kvdb.example.com", "KVDB.example.com:443", "a.corp.example", "corp.example"):
            assert client.get("/health", headers={"host": host}).status_code == 200, host
        for host in ("example.com", "kvdb.example.com.evil", "xcorp.example"):
            assert client.get("/health", headers={"host": host}).status_code == 403, host


def test_a_node_with_tokens_is_not_open_to_rebinding(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(server={"tokens": [{"token": TOKEN, "role": "admin"}]})
    with LocalClient(create_app(settings)) as client:
        response = client.get("/kv/k", headers={"host": "kvdb.internal"})
        assert response.status_code == 401  # served (the page has no token), Host not checked


# -- Origin -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": EVIL},
        {"origin": EVIL, "sec-fetch-site": "cross-site"},
        {"origin": "http://localhost:3000", "sec-fetch-site": "same-site"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
    ],
)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/kv/_batch", BATCH),
        ("POST", "/sql", b"DROP PIPELINE p;"),
        ("PUT", "/kv/pwned", b"1"),
        ("DELETE", "/kv/k", b""),
        ("POST", "/streams", b'{"name": "s"}'),
    ],
)
def test_cross_site_writes_are_refused(
    client: LocalClient, headers: dict[str, str], method: str, path: str, body: bytes
) -> None:
    client.put("/kv/k", content=b"v")
    response = client.request(
        method, path, content=body, headers={"content-type": "text/plain", **headers}
    )
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "cross_site_request"
    assert "server.cors_origins" in response.json()["message"]
    assert client.get("/kv/pwned").status_code == 404 and client.get("/kv/k").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},  # a program: no Origin, no Sec-Fetch-Site
        {"origin": "http://localhost", "sec-fetch-site": "same-origin"},
        {"origin": "http://localhost"},  # an older browser, same origin
        {"sec-fetch-site": "none"},  # typed by the user
    ],
)
def test_same_origin_and_programs_may_write(client: LocalClient, headers: dict[str, str]) -> None:
    response = client.post(
        "/kv/_batch", content=BATCH, headers={"content-type": "application/json", **headers}
    )
    assert response.status_code == 200, response.text


def test_cross_site_reads_are_left_to_the_browser(client: LocalClient) -> None:
    # The same-origin policy keeps the response from the page; nothing changes.
    assert client.get("/kv", headers={"origin": EVIL}).status_code == 200


def test_a_cross_site_websocket_is_refused(client: LocalClient) -> None:
    with pytest.raises(WebSocketDenialResponse) as info:  # noqa: SIM117
        with client.websocket_connect("/ws/changes?since=0", headers={"origin": EVIL}):
            pass
    assert info.value.status_code == 403
    assert info.value.json()["error"] == "cross_site_request"
    with client.websocket_connect(
        "/ws/changes?since=0", headers={"origin": "http://localhost"}
    ) as ws:
        assert ws.receive_json()["type"] == "caught_up"


def test_the_fast_path_leaves_browsers_to_the_guard(live_server: LiveServer) -> None:
    status, _, body = raw(
        live_server,
        f"PUT /kv/pwned HTTP/1.1\nHost: localhost\nOrigin: {EVIL}\nContent-Length: 1\n",
        b"1",
    )
    assert (status, b"cross_site_request" in body) == (403, True)
    assert live_server.app.node.store.get("pwned") is None


def test_configured_origins_may_write_with_cors(settings_factory: Callable[..., Settings]) -> None:
    app_origin = "https://app.example.com"
    settings = settings_factory(server={"cors_origins": [app_origin]})
    with LocalClient(create_app(settings)) as client:
        preflight = client.options(
            "/kv/k",
            headers={
                "origin": app_origin,
                "access-control-request-method": "PUT",
                "access-control-request-headers": "content-type, if-match",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == app_origin
        assert "PUT" in preflight.headers["access-control-allow-methods"]
        written = client.put("/kv/k", content=b"v", headers={"origin": app_origin})
        assert written.status_code == 200
        assert written.headers["access-control-allow-origin"] == app_origin
        assert "etag" in written.headers["access-control-expose-headers"].lower()
        refused = client.put("/kv/k", content=b"v", headers={"origin": EVIL})
        assert refused.status_code == 403


# -- bodies and values ---------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/kv/_batch", BATCH),
        ("/streams", b'{"name": "s"}'),
        ("/bus/routes", b'{"name": "r", "handler_names": ["h"]}'),
        ("/bus/replay", b'{"handler": "h", "from_seq": 1, "dry_run": true}'),
    ],
)
def test_json_bodies_need_a_json_content_type(
    client: LocalClient, content_type: str | None, path: str, body: bytes
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = client.post(path, content=body, headers=headers)
    assert response.status_code == 415, response.text
    assert response.json()["error"] == "unsupported_media_type"
    assert "application/json" in response.json()["message"]
    assert client.get("/kv/pwned").status_code == 404


def test_json_bodies_are_bounded(client: LocalClient) -> None:
    huge = b'{"name": "s", "key_patterns": ["' + b"a" * 2_000_000 + b'"]}'
    response = client.post("/streams", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413


PAGE = b"<script>fetch('/kv').then(r => r.text()).then(alert)</script>"


def _cannot_run_script(headers: Mapping[str, str]) -> None:
    assert headers["content-type"] == "text/html"
    assert headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in headers["content-security-policy"]
    assert "default-src 'none'" in headers["content-security-policy"]


def test_stored_values_cannot_run_script(client: LocalClient) -> None:
    client.put("/kv/page", content=PAGE, headers={"content-type": "text/html"})
    _cannot_run_script(client.get("/kv/page").headers)


def test_stored_values_cannot_run_script_on_the_fast_path(live_server: LiveServer) -> None:
    live_server.app.node.store.put_sync("page", PAGE, content_type="text/html")
    _cannot_run_script(raw(live_server, "GET /kv/page HTTP/1.1\nHost: localhost\n")[1])


@pytest.mark.parametrize("path", ["/ui/", "/ui/js/app.js", "/docs", "/redoc"])
def test_the_console_and_docs_run_only_their_own_scripts(client: LocalClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert ("'unsafe-inline'" in policy) == (path == "/redoc")  # ReDoc injects its styles
    assert response.headers["x-frame-options"] == "DENY"
