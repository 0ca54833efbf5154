"""Connections that end: SIGTERM ends every feed with a final message and the server exits
within seconds (#9); a client that stops reading loses its connection for real, WebSocket or
SSE, so it cannot exhaust file descriptors (#10)."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client

from tests.conftest import eventually_sync
from tests.integration.conftest import ServerProcess

pytestmark = pytest.mark.slow


def _established(port: int) -> int:
    """The server side's ESTABLISHED TCP connections on ``port`` (from /proc/net/tcp*)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                count += local_port == port and fields[3] == "01"
    return count


def _serve(tmp_path: Path, factory: type[ServerProcess], yaml: str = "") -> ServerProcess:
    config = tmp_path / "kvdb.yaml"
    config.write_text(yaml or "server: {}\n")
    return factory(tmp_path / "data", "--config", str(config)).start()


# -- #9 ------------------------------------------------------------------------------------------


def test_sigterm_ends_every_feed_with_a_final_message(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    server = _serve(tmp_path, server_factory)
    httpx.put(f"{server.url}/kv/k", content=b"v").raise_for_status()
    results: dict[str, Any] = {}

    def sse() -> None:
        with httpx.stream("GET", f"{server.url}/changes?feed=sse&since=0", timeout=60) as feed:
            results["sse"] = [line for line in feed.iter_lines() if line]

    def long_poll() -> None:
        response = httpx.get(
            f"{server.url}/changes?since=1&feed=longpoll&timeout_ms=300000", timeout=60
        )
        results["longpoll"] = (response.status_code, response.json())

    def web_socket() -> None:
        url = server.url.replace("http", "ws") + "/ws/changes?since=0"
        messages = []
        with websockets.sync.client.connect(url) as ws:
            try:
                while True:
                    messages.append(json.loads(ws.recv(timeout=60)))
            except websockets.exceptions.ConnectionClosed as closed:
                results["ws_close"] = closed.rcvd.code if closed.rcvd else None
        results["ws"] = messages

    threads = [threading.Thread(target=t) for t in (sse, long_poll, web_socket)]
    for thread in threads:
        thread.start()
    eventually_sync(lambda: _established(server.port) >= 3)
    time.sleep(0.3)  # all three are waiting for events
    assert server.process is not None
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=15)
    took = time.monotonic() - started
    for thread in threads:
        thread.join(timeout=10)
    assert took < 8, f"the server took {took:.1f} s to stop"
    assert server.process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    sse_final = json.loads(results["sse"][-1].removeprefix("data: "))
    assert results["sse"][-2] == "event: error" and sse_final["code"] == "shutting_down"
    assert sse_final["seq"] == 1 and "since=1" in sse_final["message"]
    assert results["longpoll"] == (200, {"events": [], "last_seq": 1})
    assert (
        results["ws"][-1]["code"] == "shutting_down" and "since=1" in results["ws"][-1]["message"]
    )
    assert results["ws_close"] == 1001
    assert "Traceback" not in server.log.read_text()


# -- #10 -----------------------------------------------------------------------------------------


STALLS = "server:\n  subscriptions: {stall_timeout: 1s, buffer_size: 100, max_batch: 100}\n"


def _stalled_client(server: ServerProcess, request: bytes) -> socket.socket:
    """A client that sends ``request`` and then never reads: tiny receive buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(request)
    return sock


def _fill(server: ServerProcess, seconds: float = 3.0) -> None:
    """Write large values for a while, so the stalled clients' buffers fill up."""
    value = b"x" * 20_000
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=server.url) as http:
        i = 0
        while time.monotonic() < deadline:
            ops = [{"op": "put", "key": f"big/{i}/{n}", "value": value.decode()} for n in range(20)]
            http.post("/kv/_batch", json={"ops": ops}).raise_for_status()
            i += 1


@pytest.mark.parametrize("feed", ["websocket", "sse"])
def test_a_client_that_stops_reading_loses_its_connection(
    tmp_path: Path, server_factory: type[ServerProcess], feed: str
) -> None:
    server = _serve(tmp_path, server_factory, STALLS)
    if feed == "websocket":
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            "GET /ws/changes?since=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
    else:
        request = "GET /changes?feed=sse&since=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    clients = [_stalled_client(server, request.encode()) for _ in range(5)]
    try:
        eventually_sync(lambda: _established(server.port) >= 5)
        _fill(server)
        # stall_timeout (1 s) plus the close grace (5 s): every one is gone, for real
        eventually_sync(lambda: _established(server.port) == 0, timeout=15)
        assert httpx.get(f"{server.url}/health").status_code == 200
    finally:
        for sock in clients:
            sock.close()
