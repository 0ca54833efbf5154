"""A real server delivering to a log handler and a webhook is killed with SIGKILL under
writes, twice. After the restarts each handler has received every event routed to it, in seq
order, at least once (duplicates only of what was in flight at the kill)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from api.client import AsyncClient
from tests.conftest import eventually
from tests.eventbus.conftest import Receiver
from tests.integration.conftest import ServerProcess, write_until_killed

pytestmark = pytest.mark.slow

WRITERS = 8


def logged_seqs(path: Path) -> list[int]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    complete = lines if path.read_text().endswith("\n") else lines[:-1]  # a torn last line
    return [json.loads(line)["seq"] for line in complete]


def in_order_at_least_once(seqs: list[int], expected: set[int]) -> None:
    """Every expected seq is there; reading the stream, seqs only go backwards when a
    restart redelivers what was not yet checkpointed."""
    assert expected <= set(seqs), sorted(expected - set(seqs))[:10]
    deduplicated = list(dict.fromkeys(seqs))
    assert deduplicated == sorted(deduplicated)


async def write_round(server: ServerProcess, round_no: int) -> None:
    async def put_pair(kv: AsyncClient, w: int, i: int) -> None:
        await kv.put(f"orders/{round_no}-{w}-{i}", b'{"total": 1}')
        await kv.put(f"other/{round_no}-{w}-{i}", b"x")

    await write_until_killed(server, put_pair, writers=WRITERS, then=(1.0, 1.0))


async def test_handlers_get_everything_across_sigkill(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    receiver = Receiver().start()
    log = tmp_path / "audit.jsonl"
    config = tmp_path / "kvdb.yaml"
    config.write_text(
        f"""
handlers:
  - name: audit
    log: {{path: "{log}"}}
  - name: hook
    webhook: {{url: "{receiver.url}", timeout: 2s}}
    batch_size: 50
    flush_interval: 20ms
    retry: {{max_attempts: 1000, initial_delay: 10ms, max_delay: 200ms}}
routes:
  - {{name: all, handler_names: [audit]}}
  - {{name: orders, key_patterns: ["orders/.*"], handler_names: [hook]}}
"""
    )
    data = tmp_path / "data"
    try:
        for round_no in range(2):
            server = server_factory(data, "--config", str(config)).start()
            if round_no == 1:
                receiver.stop()  # the webhook receiver is down across this round
            await write_round(server, round_no)
        receiver.start()
        server = server_factory(data, "--config", str(config)).start()
        async with httpx.AsyncClient(base_url=server.url) as http:
            last_seq = (await http.get("/health")).json()["last_seq"]
            changes = (await http.get(f"/changes?since=0&limit={last_seq}")).json()["events"]
            orders = {e["seq"] for e in changes if e["key"].startswith("orders/")}
            written_while_down = {e["seq"] for e in changes if e["key"].startswith("orders/1-")}
            await eventually(
                lambda: len(set(logged_seqs(log))) >= last_seq and orders <= set(receiver.seqs),
                timeout=60,
                interval=0.05,
            )
            stats = (await http.get("/stats")).json()["bus"]["handlers"]
        server.stop()
    finally:
        receiver.stop()
    assert last_seq > 200 and written_while_down  # both rounds wrote under load
    in_order_at_least_once(logged_seqs(log), set(range(1, last_seq + 1)))
    in_order_at_least_once(receiver.seqs, orders)
    assert stats["hook"]["dead_lettered"] == 0 and stats["audit"]["lag_events"] == 0
