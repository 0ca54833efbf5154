"""SQL pipelines in a real server that is killed with SIGKILL while it computes, several times.

After every restart the pipelines resume from their last checkpoint (in LMDB, with the input
seq it reflects) and replay the log from there. At the end their results and counters must
equal those of one uninterrupted run over the same change log, computed here from the store.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from api.client import AsyncClient
from compute import PipelineRuntime
from compute.sql import parse_script, plan_pipeline
from compute.sql.catalog import define_stream
from kvdb import ChangeEvent, Put, Store, StoreConfig
from tests.conftest import eventually
from tests.integration.conftest import ServerProcess, write_until_killed

pytestmark = pytest.mark.slow

ROUNDS = 3
WRITERS = 8

STREAM = (
    "CREATE STREAM readings (sensor STRING, value DOUBLE, at TIMESTAMP, "
    "WATERMARK FOR at AS at - INTERVAL '2' SECOND) WITH (key_pattern = 'readings/.*')"
)
PIPELINES = {
    "per_sensor": (
        "CREATE PIPELINE per_sensor WITH (allowed_lateness = INTERVAL '1' SECOND) AS "
        "SELECT sensor, window_start, window_end, COUNT(*) AS n, SUM(value) AS total, "
        "MAX(value) AS peak FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(at), "
        "INTERVAL '5' SECONDS)) GROUP BY sensor, window_start, window_end"
    ),
    "sessions": (
        "CREATE PIPELINE sessions AS SELECT sensor, window_start, window_end, COUNT(*) AS n "
        "FROM TABLE(SESSION(TABLE readings PARTITION BY sensor, DESCRIPTOR(at), "
        "INTERVAL '800' MILLISECONDS)) GROUP BY sensor, window_start, window_end EMIT FINAL"
    ),
    "sliding": (
        "CREATE PIPELINE sliding AS SELECT window_start, AVG(value) AS mean FROM "
        "TABLE(HOP(TABLE readings, DESCRIPTOR(at), INTERVAL '1' SECOND, INTERVAL '3' SECONDS)) "
        "GROUP BY window_start, window_end"
    ),
}
COUNTERS = ("events_in", "invalid", "late_dropped", "windows_fired", "late_updates")


class Clock:
    """Event times: mostly increasing, some out of order, a few beyond the lateness."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000
        self.rng = random.Random(11)

    def next(self) -> int:
        self.now += self.rng.randrange(0, 40)
        return self.now - self.rng.choice([0, 0, 0, 500, 1500, 4000])


async def write_round(server: ServerProcess, clock: Clock, round_no: int) -> None:
    written = 0

    async def write(kv: AsyncClient, w: int, i: int) -> None:
        nonlocal written
        batch = [
            Put(
                f"readings/{round_no}/{w}/{i}/{j}",
                orjson.dumps({"sensor": f"s{(i + j) % 7}", "value": j, "at": clock.next()}),
            )
            for j in range(20)
        ]
        await kv.batch(batch)
        written += len(batch)

    # a checkpoint or two after 3000 events, then more
    await write_until_killed(
        server, write, writers=WRITERS, until=lambda: written >= 3000, then=(0.5, 1.5)
    )


async def caught_up(server: ServerProcess) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        last_seq = (await http.get("/health")).json()["last_seq"]

        async def all_caught_up() -> bool:
            pipelines = (await http.get("/pipelines")).json()["pipelines"]
            if len(pipelines) != len(PIPELINES) or not all(
                p["lag_events"] == 0 and p["status"] == "running" for p in pipelines
            ):
                return False
            stream = (await http.get("/streams/_pipeline.per_sensor/stats")).json()
            return bool(stream["consumers"][0]["checkpoint"] >= last_seq)

        await eventually(all_caught_up, timeout=60, interval=0.1)
        results = {}
        for name in PIPELINES:
            results[name] = {
                "results": (await http.get(f"/pipelines/{name}/results")).json(),
                "stats": (await http.get(f"/pipelines/{name}")).json(),
            }
        return results


def uninterrupted(events: list[ChangeEvent]) -> dict[str, dict[str, Any]]:
    (stream_statement,) = parse_script(STREAM)
    streams = {"readings": define_stream(stream_statement, STREAM)}
    expected = {}
    for name, sql in PIPELINES.items():
        (statement,) = parse_script(sql)
        runtime = PipelineRuntime(plan_pipeline(statement, streams, sql).pipeline)
        for start in range(0, len(events), 1000):
            runtime.process(events[start : start + 1000])
        expected[name] = {"results": runtime.results().to_json(), "stats": runtime.stats()}
    return expected


async def test_pipelines_survive_sigkill_with_the_results_of_an_uninterrupted_run(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    data_dir = tmp_path / "data"
    clock = Clock()
    server = server_factory(data_dir).start()
    async with httpx.AsyncClient(base_url=server.url) as http:
        script = ";\n".join([STREAM, *PIPELINES.values()])
        response = await http.post("/sql", content=script)
        assert response.status_code == 200, response.text
    for round_no in range(ROUNDS):
        if round_no:
            server = server_factory(data_dir).start()
        await write_round(server, clock, round_no)

    server = server_factory(data_dir).start()  # pipelines come back from their records
    async with httpx.AsyncClient(base_url=server.url) as http:
        resumed = (await http.get("/pipelines/per_sensor")).json()
    assert resumed["checkpoint_seq"] > 0  # resumed from saved state, not recomputed from zero
    observed = await caught_up(server)
    server.stop()

    with Store(StoreConfig(data_dir=data_dir)) as store:
        events: list[ChangeEvent] = []
        while batch := store.read_changes(events[-1].seq if events else 0, limit=10_000):
            events.extend(batch)
    expected = uninterrupted(events)
    for name in PIPELINES:
        assert observed[name]["results"] == expected[name]["results"], name
        stats = observed[name]["stats"]
        assert {k: stats[k] for k in COUNTERS} == {k: expected[name]["stats"][k] for k in COUNTERS}
        assert stats["events_in"] > 3000 * ROUNDS
    assert expected["per_sensor"]["stats"]["late_dropped"] > 0  # lateness was exercised
    assert expected["per_sensor"]["stats"]["late_updates"] > 0
