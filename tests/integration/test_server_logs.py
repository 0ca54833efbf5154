"""What ``kvdb serve --access-log`` writes: every request, the fast /kv path's included,
without a traceback (#13), and never a token, even one carried in a URL (#4)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import websockets.sync.client

from tests.conftest import eventually_sync
from tests.integration.conftest import ServerProcess

pytestmark = pytest.mark.slow

TOKEN = "secret-token-0123456789abcdef"


def test_the_access_log_has_every_request_and_no_token(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    config = tmp_path / "kvdb.yaml"
    config.write_text(f"server:\n  tokens:\n    - {{token: {TOKEN}, role: admin}}\n")
    server = server_factory(tmp_path / "data", "--config", str(config), "--access-log").start()
    auth = {"authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.url, headers=auth) as http:
        assert http.put("/kv/fast/1", content=b"v").status_code == 200
        assert http.get("/kv/fast/1").status_code == 200
        assert http.delete("/kv/fast/1").status_code == 200
        assert http.get("/kv/fast/1").status_code == 404
        with http.stream("GET", "/changes?feed=sse&limit=1&since=0") as sse:
            assert sse.status_code == 200
    sse_url = f"{server.url}/changes?feed=sse&limit=1&since=0&access_token={TOKEN}"
    with httpx.stream("GET", sse_url) as sse:
        assert sse.status_code == 200  # where a browser cannot send a header: accepted
    refused = httpx.get(f"{server.url}/stats?access_token={TOKEN}")
    assert refused.status_code == 400 and refused.json()["error"] == "token_in_url"
    ws_url = server.url.replace("http", "ws") + f"/ws/changes?since=0&access_token={TOKEN}"
    with websockets.sync.client.connect(ws_url) as ws:
        assert '"type":"events"' in str(ws.recv())

    def logged() -> str | None:
        text = server.log.read_text()
        return text if "/ws/changes" in text and "GET /stats" in text else None

    log = eventually_sync(logged)
    assert TOKEN not in log
    assert "access_token=[redacted]" in log
    assert "Traceback" not in log and "Logging error" not in log
    for line in (
        '"PUT /kv/fast/1 HTTP/1.1" 200',
        '"GET /kv/fast/1 HTTP/1.1" 404',
        '"DELETE /kv/fast/1 HTTP/1.1" 200',
        '"GET /stats?access_token=[redacted]',
    ):
        assert line in log, f"{line!r} not in the access log:\n{log}"  # fmt: skip
