"""External targets under faults (REPLICATION 7): a kvdb server killed with SIGKILL while it
publishes to JetStream and restarted, within and after the de-duplication window; NATS,
PostgreSQL and Redis restarted under writes. Afterwards the stream holds each seq exactly once
with no gap, and the table and the hashes equal the node's versioned scan.

NATS and Redis are private servers of the test (tests/services.py: the machine's commands on a
free port), killed and started again; PostgreSQL is the machine's, restarted in place (fast
shutdown) and back within a second or two.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api import Node, NodeSettings, Settings
from sync import SyncConfig, TargetConfig
from sync.targets.options import JetStreamOptions, RedisOptions, TargetOptions
from tests.integration.conftest import ServerProcess
from tests.services import (
    NATS_URL,
    PG_DSN,
    delete_stream,
    event_seqs,
    private_nats,
    private_redis,
    restart_postgres,
    scan_all,
    stream_messages,
    target_state,
    unique,
    versioned_state,
)
from tests.sync.conftest import external_options

pytestmark = pytest.mark.slow


def exactly_once_in_order(messages: list[Any], last_seq: int) -> None:
    seqs = event_seqs(messages)
    assert len(seqs) == len(set(seqs)), "a seq was published twice"
    assert seqs == list(range(1, last_seq + 1)), "a gap, or out of order"


async def write_batches(url: str, prefix: str, seconds: float, size: int = 50) -> int:
    """POST atomic batches of ``size`` puts (and a delete each) for ``seconds`` or until the
    server dies; returns how many batches were acknowledged."""
    done = 0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        while time.monotonic() < deadline:
            ops = [{"op": "put", "key": f"{prefix}/{done}/{i}", "value": f"v{i}"}
                   for i in range(size)]  # fmt: skip
            ops.append({"op": "delete", "key": f"{prefix}/{done}/0"})
            try:
                response = await http.post("/kv/_batch", json={"ops": ops})
            except httpx.TransportError:
                return done
            assert response.status_code == 200, response.text
            done += 1
    return done


async def kill_while_publishing(server: ServerProcess, prefix: str) -> int:
    """Write big batches until the bridge lags well behind (it is publishing), then SIGKILL
    the server; returns the lag seen at the kill."""
    writer = asyncio.create_task(write_batches(server.url, prefix, 10.0, size=500))
    lag = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        deadline = time.monotonic() + 5.0
        while lag < 1000 and time.monotonic() < deadline:
            status = (await http.get("/sync/status")).json()
            lag = status["processors"][0]["targets"][0]["lag_events"]
            await asyncio.sleep(0.01)
    await asyncio.to_thread(server.kill)
    await writer
    return int(lag)


async def caught_up(url: str, timeout: float = 60.0) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=5) as http, asyncio.timeout(timeout):
        while True:
            status = (await http.get("/sync/status")).json()
            target = status["processors"][0]["targets"][0]
            if target["lag_events"] == 0 and target["state"] == "live":
                return {**target, "last_seq": status["last_seq"]}
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("window", ["2m", "1s"])
async def test_kvdb_killed_mid_publish_publishes_each_event_once(
    tmp_path: Path, server_factory: type[ServerProcess], window: str
) -> None:
    """Within the window JetStream drops a republished message id; past it (the restart
    comes 2 s after the kill, the window is 1 s) the stream's last seq keeps the bridge from
    republishing."""
    stream, prefix = unique("KVDBIT_"), unique("kvdbit")
    config = tmp_path / "kvdb.yaml"
    config.write_text(f"""
sync:
  - name: bridge
    targets:
      - {{kind: jetstream, name: events, servers: ["{NATS_URL}"], stream: {stream},
          subject_prefix: {prefix}, storage: memory, duplicate_window: {window}}}
    retry_delay: 50ms
    max_retry_delay: 500ms
    batch_size: 500
""")
    server = server_factory(tmp_path / "data", "--config", str(config), node_id="it").start()
    try:
        lags = []
        for round_no in range(2):
            lags.append(await kill_while_publishing(server, f"r{round_no}"))
            await asyncio.sleep(2.0 if window == "1s" else 0.1)
            server.start()
        await write_batches(server.url, "after", 0.5)
        status = await caught_up(server.url)
        assert any(lags), "the bridge never lagged: no kill happened mid-publish"
        messages = await stream_messages(NATS_URL, stream, f"{prefix}.it.>")
        exactly_once_in_order(messages, status["last_seq"])
    finally:
        server.kill()
        await delete_stream(NATS_URL, stream)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with Node(Settings(node=NodeSettings(data_dir=tmp_path / "a", id="a"))) as started:
        yield started


async def writes_during(node: Node, fault: Any, seconds_before: float = 0.5) -> None:
    """Write continuously while ``fault`` (blocking) runs in a thread, and a little after."""
    stop = asyncio.Event()

    async def writer() -> None:
        index = 0
        while not stop.is_set():
            await node.store.put(f"k/{index % 500}", f"v{index}".encode())
            if index % 7 == 0:
                await node.store.delete(f"k/{(index * 3) % 500}")
            index += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(writer())
    await asyncio.sleep(seconds_before)
    await asyncio.to_thread(fault)
    await asyncio.sleep(0.5)
    stop.set()
    await task


async def run_target(node: Node, kind: str, options: TargetOptions) -> None:
    target = TargetConfig(kind=kind, name="out", options=options)
    config = SyncConfig("bridge", targets=(target,), retry_delay_ms=50, max_retry_delay_ms=500,
                        request_timeout_ms=3000, batch_size=200)  # fmt: skip
    await node.sync.create(config)


async def node_caught_up(node: Node, timeout: float = 60.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            target = node.sync.status()["processors"][0]["targets"][0]
            if target["lag_events"] == 0 and target["state"] == "live":
                return dict(target)
            await asyncio.sleep(0.05)


async def test_nats_restarted_under_writes(tmp_path: Path, node: Node) -> None:
    server = private_nats(tmp_path)
    options = JetStreamOptions(servers=(f"nats://127.0.0.1:{server.port}",), stream="KVDB_a")
    try:
        await run_target(node, "jetstream", options)
        await writes_during(node, lambda: server.restart(down_s=0.5))
        status = await node_caught_up(node)
        assert status["retries"] > 0 and status["last_error"]
        messages = await stream_messages(options.servers[0], "KVDB_a", "kvdb.a.>")
        exactly_once_in_order(messages, node.store.last_seq)
        assert await target_state("jetstream", options, "a", "out") == versioned_state(
            scan_all(node.store)
        )
    finally:
        server.kill()


async def test_postgres_restarted_under_writes(node: Node) -> None:
    options, cleanup = external_options("postgres")
    try:
        await run_target(node, "postgres", options)
        await writes_during(node, restart_postgres)
        status = await node_caught_up(node)
        assert status["retries"] > 0 and status["last_error"]
        assert await target_state("postgres", options, "a", "out") == versioned_state(
            scan_all(node.store)
        )
    finally:
        await cleanup()


async def test_redis_restarted_under_writes_is_resynced(tmp_path: Path, node: Node) -> None:
    """The machine's Redis keeps nothing on disk: after a restart it is empty, a new
    incarnation, and the node sends it everything again."""
    server = private_redis(tmp_path)
    options = RedisOptions(url=f"redis://127.0.0.1:{server.port}/0", key_prefix="kv:")
    try:
        await run_target(node, "redis", options)
        await writes_during(node, lambda: server.restart(down_s=0.5))
        status = await node_caught_up(node)
        assert status["retries"] > 0 and status["last_error"]
        assert await target_state("redis", options, "a", "out") == versioned_state(
            scan_all(node.store)
        )
    finally:
        server.kill()


async def test_an_unreachable_database_shows_in_status_and_nothing_is_lost(node: Node) -> None:
    """A missing database needs an operator: the target is unhealthy with the reason, keeps
    retrying, and once the dsn is right (here: the processor made again) all arrives."""
    options, cleanup = external_options("postgres")
    assert dataclasses.is_dataclass(options)
    missing = dataclasses.replace(options, dsn=PG_DSN.rsplit("/", 1)[0] + "/kvdb_no_such_db")
    try:
        await run_target(node, "postgres", missing)
        await node.store.put("k", b"v")
        async with asyncio.timeout(20):
            while not (target := node.sync.status()["processors"][0]["targets"][0])["retries"]:
                await asyncio.sleep(0.05)
        assert target["state"] == "unhealthy" and "does not exist" in target["last_error"]
        assert target["lag_events"] == 1
        await node.sync.remove("bridge")
        await run_target(node, "postgres", options)
        await node_caught_up(node)
        assert set(await target_state("postgres", options, "a", "out")) == {"k"}
    finally:
        await cleanup()
