"""Running SQL scripts: statements, all-or-nothing planning, persistence across restarts."""

from __future__ import annotations

import pytest

from changestream import ChangeStreamManager
from compute import (
    PipelineExists,
    SqlPlanError,
    SqlStreamExists,
    StreamComputingEngine,
    StreamInUse,
    UnknownPipeline,
    UnknownSqlStream,
)
from kvdb import Store

from ..conftest import settle, write

STREAM = "CREATE STREAM clicks (page STRING, at TIMESTAMP) WITH (key_pattern = 'clicks/.*');"
PIPELINE = (
    "CREATE PIPELINE per_page AS SELECT page, window_start, COUNT(*) AS n FROM "
    "TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(at), INTERVAL '1' MINUTE)) "
    "GROUP BY page, window_start, window_end;"
)


async def test_a_script_creates_shows_and_drops(engine: StreamComputingEngine) -> None:
    results = await engine.sql.execute(STREAM + PIPELINE + "SHOW STREAMS; SHOW PIPELINES;")
    assert [(r.statement, r.name, r.action) for r in results[:2]] == [
        ("CREATE STREAM", "clicks", "created"),
        ("CREATE PIPELINE", "per_page", "created"),
    ]
    streams, pipelines = results[2].to_json(), results[3].to_json()
    assert streams["rows"][0]["columns"] == ["page STRING", "at TIMESTAMP"]
    assert pipelines["rows"][0]["name"] == "per_page"
    assert pipelines["rows"][0]["sql"].startswith("CREATE PIPELINE per_page AS SELECT")
    assert pipelines["columns"][:3] == ["name", "origin", "status"]
    with pytest.raises(StreamInUse, match="read by pipeline\\(s\\) per_page"):
        await engine.sql.execute("DROP STREAM clicks")
    dropped = await engine.sql.execute("DROP PIPELINE per_page; DROP STREAM clicks;")
    assert [r.action for r in dropped] == ["dropped", "dropped"]
    assert engine.list() == [] and engine.sql.streams == {}


async def test_nothing_applies_if_any_statement_fails_to_plan(
    engine: StreamComputingEngine,
) -> None:
    bad = PIPELINE.replace("COUNT(*)", "COUNT(*), price")
    with pytest.raises(SqlPlanError, match=r"line 1, column \d+: unknown column price"):
        await engine.sql.execute(STREAM + bad)
    assert engine.sql.streams == {} and engine.list() == []


async def test_exists_replace_and_if_clauses(engine: StreamComputingEngine) -> None:
    await engine.sql.execute(STREAM + PIPELINE)
    with pytest.raises(SqlStreamExists):
        await engine.sql.execute(STREAM)
    with pytest.raises(PipelineExists):
        await engine.sql.execute(PIPELINE)
    skipped = await engine.sql.execute(
        STREAM.replace("CREATE STREAM", "CREATE STREAM IF NOT EXISTS")
        + PIPELINE.replace("CREATE PIPELINE", "CREATE PIPELINE IF NOT EXISTS")
        + "DROP PIPELINE IF EXISTS nothing; DROP STREAM IF EXISTS nothing;"
    )
    assert [r.action for r in skipped] == ["skipped"] * 4
    replaced = await engine.sql.execute(
        PIPELINE.replace("CREATE PIPELINE", "CREATE OR REPLACE PIPELINE").replace(
            "1' MINUTE", "2' MINUTE"
        )
    )
    assert replaced[0].action == "replaced"
    with pytest.raises(StreamInUse):
        await engine.sql.execute(STREAM.replace("CREATE STREAM", "CREATE OR REPLACE STREAM"))
    with pytest.raises(UnknownPipeline):
        await engine.sql.execute("DROP PIPELINE nothing")
    with pytest.raises(UnknownSqlStream):
        await engine.sql.execute("DROP STREAM nothing")


async def test_declared_scripts_are_idempotent(engine: StreamComputingEngine) -> None:
    first = await engine.sql.execute(STREAM + PIPELINE, declared=True)
    again = await engine.sql.execute(STREAM + PIPELINE, declared=True)
    assert [r.action for r in first] == ["created", "created"]
    assert [r.action for r in again] == ["unchanged", "unchanged"]
    changed = await engine.sql.execute(
        STREAM + PIPELINE.replace("1' MINUTE", "5' MINUTE"), declared=True
    )
    assert [r.action for r in changed] == ["unchanged", "replaced"]


async def test_sql_objects_and_their_state_survive_a_restart(
    store: Store, manager: ChangeStreamManager
) -> None:
    engine = StreamComputingEngine(store, manager, checkpoint_interval_ms=0, batch_timeout_ms=0)
    await engine.start()
    await engine.sql.execute(STREAM + PIPELINE)
    await write(
        store, [{"page": "home", "at": 1_000}, {"page": "home", "at": 2_000}], prefix="clicks"
    )
    await settle(engine.get("per_page"), store)
    await engine.stop()

    again = StreamComputingEngine(store, manager, checkpoint_interval_ms=0, batch_timeout_ms=0)
    await again.start()
    assert sorted(again.sql.streams) == ["clicks"]
    processor = again.get("per_page")
    assert processor.origin == "sql" and processor.checkpointed_seq == 2  # resumed, not recomputed
    await write(store, [{"page": "home", "at": 3_000}], prefix="clicks")
    await settle(processor, store)
    assert [r["n"] for r in processor.results().rows] == [3]
    await again.remove("per_page")  # removing through the engine forgets the SQL definition too
    await again.stop()

    third = StreamComputingEngine(store, manager)
    await third.start()
    assert third.list() == [] and sorted(third.sql.streams) == ["clicks"]
    await third.stop()
