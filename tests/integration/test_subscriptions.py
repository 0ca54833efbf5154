"""Subscriptions against real server processes: resume across SIGKILL (WebSocket, SSE,
durable named streams) and bounded server memory under a subscriber that stops reading."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
import pytest
import websockets

from api.client import AsyncClient
from kvdb import Put
from tests.integration.conftest import ServerProcess

pytestmark = pytest.mark.slow


async def write(url: str, prefix: str, count: int, value: bytes = b"v") -> None:
    async with AsyncClient(url) as kv:
        for start in range(0, count, 500):
            await kv.batch(
                [Put(f"{prefix}/{i}", value) for i in range(start, min(count, start + 500))]
            )


async def test_watch_resumes_across_a_sigkill_with_no_gap(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    server = server_factory(tmp_path / "data").start()
    received: list[int] = []

    async def consume(total: int) -> None:
        async with AsyncClient(server.url) as kv, kv.watch(since=0) as events:
            async for event in events:
                received.append(event.seq)
                if len(received) == total:
                    return

    consumer = asyncio.create_task(consume(1500))
    await write(server.url, "before", 1000)
    await asyncio.to_thread(server.kill)  # the consumer is probably still catching up
    await asyncio.sleep(0.5)
    await asyncio.to_thread(server.start)
    await write(server.url, "after", 500)
    await asyncio.wait_for(consumer, 60)
    assert received == list(range(1, 1501))


async def test_sse_resumes_with_last_event_id_across_a_sigkill(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    server = server_factory(tmp_path / "data").start()
    await write(server.url, "a", 300)
    ids: list[int] = []

    async def read_changes(last_event_id: int | None, until: int) -> int:
        headers = {"last-event-id": str(last_event_id)} if last_event_id is not None else {}
        last = last_event_id or 0
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=30) as http,
            http.stream(
                "GET", "/changes", params={"feed": "sse", "since": 0}, headers=headers
            ) as response,
        ):
            current_id = None
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    current_id = int(line[4:])
                elif line == "event: change":
                    assert current_id is not None
                    ids.append(current_id)
                    last = current_id
                    if last >= until:
                        return last
        return last

    last = await read_changes(None, 150)
    await asyncio.to_thread(server.kill)
    await asyncio.to_thread(server.start)
    await write(server.url, "b", 100)
    await read_changes(last, 400)
    assert ids == list(range(1, 401))


async def test_named_stream_resumes_after_its_durable_checkpoint(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    config = tmp_path / "kvdb.yaml"
    config.write_text(
        "streams:\n  - {name: jobs, key_patterns: ['job/.*'], enable_persistence: true, start_from: earliest}\n"
    )
    server = server_factory(tmp_path / "data", "--config", str(config)).start()
    await write(server.url, "job", 400)
    ws_url = server.url.replace("http://", "ws://") + "/ws/changes?stream=jobs"

    async def consume_and_ack(until_ack: int) -> list[int]:
        seqs: list[int] = []
        async with websockets.connect(ws_url) as ws:
            while True:
                message = orjson.loads(await ws.recv())
                if message["type"] != "events":
                    continue
                seqs += [e["seq"] for e in message["events"]]
                if seqs[-1] >= until_ack:
                    await ws.send(orjson.dumps({"ack": until_ack}).decode())
                    await ws.send(b'{"type": "ping"}'.decode())
                    while orjson.loads(await ws.recv())["type"] != "pong":  # the ack is processed
                        pass
                    return seqs

    first = await consume_and_ack(250)
    assert first[0] == 1
    await asyncio.to_thread(server.kill)  # no graceful shutdown: the checkpoint must be on disk
    await asyncio.to_thread(server.start)
    await write(server.url, "job/more", 0)
    async with websockets.connect(ws_url) as ws:
        message = orjson.loads(await ws.recv())
        assert message["type"] == "events"
        resumed = [e["seq"] for e in message["events"]]
        while resumed[-1] < 400:
            message = orjson.loads(await ws.recv())
            resumed += [e["seq"] for e in message.get("events", [])]
    assert resumed == list(range(251, 401))  # exactly after the checkpoint, no gap


def anonymous_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc status")


async def test_stalled_subscriber_keeps_server_memory_bounded(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    config = tmp_path / "kvdb.yaml"
    config.write_text("server:\n  subscriptions: {stall_timeout: 5m}\n")
    server = server_factory(tmp_path / "data", "--config", str(config)).start()
    assert server.process is not None
    ws_url = server.url.replace("http://", "ws://") + "/ws/changes?since=0"
    total = 60_000
    value = b"x" * 1500  # about 90 MB of new values in all
    async with websockets.connect(ws_url, max_queue=1, max_size=None) as ws:
        assert orjson.loads(await ws.recv())["type"] == "caught_up"
        baseline = anonymous_rss(server.process.pid)
        await write(server.url, "big", total, value)  # the subscriber reads nothing meanwhile
        growth = anonymous_rss(server.process.pid) - baseline
        assert growth < 60 * 1024 * 1024, f"server memory grew by {growth / 2**20:.0f} MiB"
        seqs: list[int] = []
        while not seqs or seqs[-1] < total:  # reading again, it catches up from the log
            message = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
            seqs += [e["seq"] for e in message.get("events", [])]
    assert seqs == list(range(1, total + 1))
