"""The fast single-key protocol under real uvicorn, on raw sockets: keep-alive, pipelining
mixed with ASGI requests, 100-continue, limits, HEAD, HTTP/1.0, disconnects."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import LiveServer, make_settings


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path / "limited", node={"limits": {"max_value_size": "1KiB"}})
    with LiveServer(settings) as server:
        yield server


def connect(server: LiveServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def read_response(
    sock: socket.socket, buffer: bytearray, *, head: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """One response from ``sock``; leftover bytes stay in ``buffer``."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a full response")
        buffer += chunk
    header_block, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    length = 0 if head or status in (100, 204, 304) else int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        rest += chunk
    buffer[:] = rest[length:]
    return status, headers, rest[:length]


def request(method: str, path: str, body: bytes = b"", extra: str = "") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode()
        + body
    )


def test_keep_alive_and_one_write_per_response(live_server: LiveServer) -> None:
    with connect(live_server) as sock:
        buffer = bytearray()
        for i in range(5):
            sock.sendall(request("PUT", f"/kv/k{i}", b"v%d" % i))
            status, headers, body = read_response(sock, buffer)
            assert status == 200 and headers["etag"].startswith('"')
            assert b'"seq":%d' % (i + 1) in body
        sock.sendall(request("GET", "/kv/k3"))
        status, headers, body = read_response(sock, buffer)
        assert (status, body, headers["content-type"]) == (200, b"v3", "application/octet-stream")
        assert "date" in headers


def test_pipelined_requests_are_answered_in_order(live_server: LiveServer) -> None:
    with connect(live_server) as sock:
        sock.sendall(
            request("PUT", "/kv/a", b"1")
            + request("GET", "/health")  # an ASGI request between fast ones
            + request("GET", "/kv/a")
            + request("DELETE", "/kv/a")
            + request("GET", "/kv/a")
            + request(
                "POST",
                "/kv/_batch",
                b'{"ops":[{"op":"put","key":"b","value":"2"}]}',
                "Content-Type: application/json\r\n",
            )
        )
        buffer = bytearray()
        answers = [read_response(sock, buffer) for _ in range(6)]
        assert [status for status, _, _ in answers] == [200, 200, 200, 200, 404, 200]
        assert b'"status":"ok"' in answers[1][2]
        assert answers[2][2] == b"1"
        assert b'"txn":3' in answers[5][2]


def test_head_and_conditional_get(live_server: LiveServer) -> None:
    with connect(live_server) as sock:
        buffer = bytearray()
        sock.sendall(request("PUT", "/kv/h", b"hello"))
        _, headers, _ = read_response(sock, buffer)
        sock.sendall(
            request("HEAD", "/kv/h")
            + request("GET", "/kv/h", extra=f"If-None-Match: {headers['etag']}\r\n")
        )
        status, head_headers, body = read_response(sock, buffer, head=True)
        assert (status, head_headers["content-length"], body) == (200, "5", b"")
        assert read_response(sock, buffer)[0] == 304


def test_expect_100_continue(live_server: LiveServer, limited_server: LiveServer) -> None:
    with connect(live_server) as sock:
        sock.sendall(
            b"PUT /kv/big HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        buffer = bytearray()
        assert read_response(sock, buffer)[0] == 100
        sock.sendall(b"hello")
        assert read_response(sock, buffer)[0] == 200
    with connect(limited_server) as sock:  # too large: refused before the body is sent
        sock.sendall(
            b"PUT /kv/big HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
        )
        buffer = bytearray()
        status, headers, body = read_response(sock, buffer)
        assert status == 413 and headers["connection"] == "close" and b"max_value_size" in body
        assert sock.recv(100) == b""  # closed


def test_values_over_the_limit(limited_server: LiveServer) -> None:
    with connect(limited_server) as sock:
        buffer = bytearray()
        sock.sendall(request("PUT", "/kv/x", b"x" * 2000))
        status, _, body = read_response(sock, buffer)
        assert status == 413 and b"payload_too_large" in body
        chunked = (
            b"PUT /kv/y HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"%x\r\n%s\r\n" % (600, b"y" * 600) for _ in range(3))
            + b"0\r\n\r\n"
        )
        sock.sendall(chunked)  # no declared length: refused once the body passes the limit
        status, _, body = read_response(sock, buffer)
        assert status == 413
        sock.sendall(request("PUT", "/kv/ok", b"fits"))  # the connection is still usable
        assert read_response(sock, buffer)[0] == 200


def test_http_1_0_and_connection_close(live_server: LiveServer) -> None:
    for raw in (
        b"GET /kv/none HTTP/1.0\r\n\r\n",
        b"GET /kv/none HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ):
        with connect(live_server) as sock:
            sock.sendall(raw)
            buffer = bytearray()
            status, headers, _ = read_response(sock, buffer)
            assert status == 404 and headers["connection"] == "close"
            assert sock.recv(100) == b""


def test_errors_and_keys_on_the_fast_path(live_server: LiveServer) -> None:
    with connect(live_server) as sock:
        buffer = bytearray()
        sock.sendall(
            request("PUT", "/kv/_reserved", b"v")
            + request("PUT", "/kv/%ED%A0%80", b"v")
            + request("PUT", "/kv/caf%C3%A9?ignored=1", b"v")
        )
        assert read_response(sock, buffer)[0] == 400
        assert b"invalid_key" in read_response(sock, buffer)[2]
        status, _, body = read_response(sock, buffer)
        assert status == 200 and '"key":"café"'.encode() in body


def test_client_leaving_mid_request_does_not_disturb_others(live_server: LiveServer) -> None:
    with connect(live_server) as sock:
        sock.sendall(
            b"PUT /kv/half HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nonly-part"
        )
    with connect(live_server) as sock:
        sock.sendall(request("PUT", "/kv/after", b"v"))
        assert read_response(sock, bytearray())[0] == 200
    assert live_server.app.node.store.get("half") is None
