"""A real server under concurrent writes is killed with SIGKILL, several times. After every
restart each acknowledged write is present and the change log has no gap."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from api.client import AsyncClient, ClientError
from kvdb import Store, StoreConfig
from tests.integration.conftest import ServerProcess

pytestmark = pytest.mark.slow

ROUNDS = 4
WRITERS = 32


async def write_until_killed(
    server: ServerProcess, round_no: int, acked: dict[str, bytes], in_flight: dict[str, bytes]
) -> int:
    """Write from many connections, then SIGKILL the server mid-stream. A write cut off by the
    kill may or may not have committed; it goes to ``in_flight``. Returns the acknowledged
    count at the moment of the kill."""
    stop = asyncio.Event()

    async def writer(w: int) -> None:
        async with AsyncClient(server.url, timeout=5) as kv:
            i = 0
            while not stop.is_set():
                key, value = f"r{round_no}/w{w}/{i}", f"{round_no}:{w}:{i}".encode()
                if i % 10 == 9:  # overwrite an earlier key now and then
                    key = f"r{round_no}/w{w}/{i - 5}"
                try:
                    await kv.put(key, value)
                except ClientError:
                    in_flight[key] = value  # never acknowledged; may have committed
                    return
                acked[key] = value
                i += 1

    start = len(acked)
    tasks = [asyncio.create_task(writer(w)) for w in range(WRITERS)]
    async with asyncio.timeout(60):  # under load, wait for progress rather than for a time
        while len(acked) - start < 300:
            await asyncio.sleep(0.01)
    await asyncio.sleep(random.uniform(0, 0.3))
    before = len(acked)
    await asyncio.to_thread(server.kill)
    stop.set()
    await asyncio.gather(*tasks)
    return before


async def test_acknowledged_writes_survive_sigkill(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    data_dir = tmp_path / "data"
    acked: dict[str, bytes] = {}
    in_flight: dict[str, bytes] = {}

    def holds_an_acknowledged_value(key: str, value: bytes | None) -> bool:
        return value in (acked[key], in_flight.get(key))

    for round_no in range(ROUNDS):
        server = server_factory(data_dir).start()
        async with AsyncClient(server.url) as kv:  # everything acknowledged before is there
            for key in random.sample(sorted(acked), min(300, len(acked))):
                item = await kv.get(key)
                assert item is not None and holds_an_acknowledged_value(key, item.value), key
        await write_until_killed(server, round_no, acked, in_flight)

    with Store(StoreConfig(data_dir=data_dir)) as store:
        for key in acked:
            entry = store.get(key)
            assert entry is not None and holds_an_acknowledged_value(key, entry.value), key
        events = []
        since = 0
        while batch := store.read_changes(since, limit=10_000):
            events.extend(batch)
            since = batch[-1].seq
        assert [e.seq for e in events] == list(range(1, store.last_seq + 1))
        latest = {}
        for event in events:
            latest[event.key] = event.new_value
        assert all(holds_an_acknowledged_value(key, latest[key]) for key in acked)
        hlcs = [e.hlc for e in events]
        assert hlcs == sorted(hlcs)
