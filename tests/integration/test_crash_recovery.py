"""A real server under concurrent writes is killed with SIGKILL, several times. After every
restart each acknowledged write is present and the change log has no gap."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from api.client import AsyncClient, ClientError
from kvdb import Store, StoreConfig
from tests.integration.conftest import ServerProcess, write_until_killed

pytestmark = pytest.mark.slow

ROUNDS = 4
WRITERS = 32


async def write_round(
    server: ServerProcess, round_no: int, acked: dict[str, bytes], in_flight: dict[str, bytes]
) -> None:
    """Write from many connections, then SIGKILL the server mid-stream. A write cut off by the
    kill may or may not have committed; it goes to ``in_flight``."""
    start = len(acked)

    async def put(kv: AsyncClient, w: int, i: int) -> None:
        key, value = f"r{round_no}/w{w}/{i}", f"{round_no}:{w}:{i}".encode()
        if i % 10 == 9:  # overwrite an earlier key now and then
            key = f"r{round_no}/w{w}/{i - 5}"
        try:
            await kv.put(key, value)
        except ClientError:
            in_flight[key] = value  # never acknowledged; may have committed
            raise
        acked[key] = value

    await write_until_killed(
        server, put, writers=WRITERS, until=lambda: len(acked) - start >= 300, then=(0, 0.3)
    )


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
        await write_round(server, round_no, acked, in_flight)

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
