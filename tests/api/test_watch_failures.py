"""watch() when things go wrong: big batches (#11), reconnections that report themselves and
give up, URLs that cannot work, and consumers of named streams taken back after a reconnect
or from a half-open connection (#12)."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets.sync.client

from api.cli import main
from api.client import Client, WatchError
from api.client.errors import ConnectionFailed
from api.client.watch import Watch
from kvdb import Put
from tests.api.conftest import LiveServer, make_settings
from tests.conftest import eventually_sync


def _watch_in_thread(watch_events: Iterator[object], count: int) -> list[object]:
    received: list[object] = []

    def consume() -> None:
        for event in watch_events:
            received.append(event)
            if len(received) == count:
                return

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    thread.join(20)
    return received


# -- #11 ----------------------------------------------------------------------------------------


def test_a_batch_bigger_than_a_frame_arrives(live_server: LiveServer) -> None:
    with Client(live_server.url) as kv:
        kv.batch([Put(f"big/{i}", b"x" * 3000) for i in range(600)])  # one 1.9 MB batch
        with kv.watch(since=0) as events:
            received = _watch_in_thread(events, 600)
    assert len(received) == 600


def test_the_server_cuts_batches_into_messages_a_default_client_takes(
    live_server: LiveServer,
) -> None:
    with Client(live_server.url) as kv:
        kv.batch([Put(f"big/{i}", b"x" * 3000) for i in range(600)])
    url = live_server.url.replace("http", "ws") + "/ws/changes?since=0"
    seqs: list[int] = []
    with websockets.sync.client.connect(url, max_size=2**20) as ws:  # websockets' default
        while len(seqs) < 600:
            message = json.loads(ws.recv(timeout=10))
            if message["type"] == "events":
                seqs += [e["seq"] for e in message["events"]]
                assert message["last_seq"] == seqs[-1]
    assert seqs == list(range(1, 601))


def test_a_url_without_a_scheme_fails_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(WatchError) as info:
        Watch("127.0.0.1:8080")
    assert info.value.code == "invalid_url"
    started = time.monotonic()
    assert main(["watch", "--url", "127.0.0.1:8080"]) == 1
    assert "invalid_url" in capsys.readouterr().err and time.monotonic() - started < 5


def test_an_unreachable_node_fails_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    with Client("http://127.0.0.1:9") as kv, pytest.raises(ConnectionFailed), kv.watch() as events:
        next(events)
    assert main(["watch", "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot reach kvdb" in capsys.readouterr().err
    assert time.monotonic() - started < 5


def test_cli_watch_says_it_reconnects_then_gives_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = LiveServer(make_settings(tmp_path)).__enter__()
    status: list[int] = []
    thread = threading.Thread(
        target=lambda: status.append(main(["watch", "--retries", "2", "--url", server.url]))
    )
    thread.start()
    eventually_sync(lambda: server.app.node.streams.subscriber_count == 1)
    server.__exit__()
    thread.join(30)
    err = capsys.readouterr().err
    assert status == [1], err
    assert "reconnecting (1/2)" in err and "reconnecting (2/2)" in err
    assert "gave_up: gave up after 2 attempts" in err


# -- #12 ----------------------------------------------------------------------------------------


@pytest.fixture
def jobs(live_server: LiveServer) -> LiveServer:
    httpx.post(
        f"{live_server.url}/streams",
        json={"name": "jobs", "enable_persistence": True, "start_from": "earliest"},
    ).raise_for_status()
    with Client(live_server.url) as kv:
        for i in range(40):
            kv.put(f"job/{i}", "x")
    return live_server


def test_immediate_reconnects_get_their_consumer_back(jobs: LiveServer) -> None:
    with Client(jobs.url) as kv:
        seen: list[int] = []
        for _ in range(30):
            with kv.watch(stream="jobs", consumer="billing", retries=0) as events:
                seen.append(next(events).seq)
    assert seen == list(range(1, 31))  # each acknowledged the one before


def _half_open_holder(server: LiveServer, consumer: str) -> socket.socket:
    """A client attached as ``consumer`` that then never reads nor answers a ping."""
    key = base64.b64encode(os.urandom(16)).decode()
    sock = socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
    sock.sendall(
        f"GET /ws/changes?stream=jobs&consumer={consumer} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    stream = server.app.node.streams.get("jobs")
    eventually_sync(lambda: consumer in stream.consumers)
    return sock


def test_a_consumer_is_taken_over_from_a_half_open_connection(jobs: LiveServer) -> None:
    holder = _half_open_holder(jobs, "billing")
    try:
        started = time.monotonic()
        with Client(jobs.url) as kv, kv.watch(stream="jobs", consumer="billing") as events:
            assert next(events).seq == 1
        assert time.monotonic() - started < 10
    finally:
        holder.close()


def test_consumer_busy_is_retried_with_backoff(jobs: LiveServer) -> None:
    retried: list[str] = []
    with Client(jobs.url) as kv, kv.watch(stream="jobs", consumer="billing") as first:
        assert next(first).seq == 1  # a live holder: it answers pings
        second = kv.watch(
            stream="jobs", consumer="billing",
            on_retry=lambda attempt, error: retried.append(getattr(error, "code", "")),
        )  # fmt: skip
        received: list[object] = []
        thread = threading.Thread(target=lambda: received.append(next(second)), daemon=True)
        thread.start()
        eventually_sync(lambda: "consumer_busy" in retried)
    thread.join(15)  # the first one closed: the second gets the consumer
    second.close()
    assert received and received[0].seq == 2  # type: ignore[attr-defined]  # after the ack
    assert set(retried) == {"consumer_busy"}
