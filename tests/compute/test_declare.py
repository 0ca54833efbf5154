"""Declared pipelines (``compute/declare.py``): SQL scripts and Python pipelines an owner
declares run; dropped, they are orphaned (stopped, state and results kept and readable, held
after a restart) until declared again (resuming from their checkpoint) or pruned; what the
API or a program made is never an owner's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest

from changestream import ChangeStreamManager, Orphaned, OwnershipConflict
from changestream.testing import ManualClock
from compute import (
    Count,
    PipelineDeclaration,
    PipelineDefinitionError,
    StreamComputingEngine,
    StreamPipeline,
    Tumbling,
)
from kvdb import Store, StoreConfig

from .conftest import settle, write

SQL = (
    "CREATE STREAM clicks (page STRING, at TIMESTAMP) WITH (key_pattern = 'clicks/.*');"
    "CREATE PIPELINE per_page AS SELECT page, window_start, COUNT(*) AS n FROM "
    "TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(at), INTERVAL '1' MINUTE)) "
    "GROUP BY page, window_start, window_end;"
)


def per_minute(name: str = "per_minute") -> StreamPipeline:
    return (
        StreamPipeline(name, ["clicks/.*"], event_time="at")
        .key_by("page")
        .window(Tumbling(60_000))
        .aggregate(n=Count())
    )


def rebuild(builder: Mapping[str, Any]) -> StreamPipeline:
    assert builder["function"] == "per_minute"
    return per_minute(**builder.get("args", {}))


PYTHON = PipelineDeclaration(pipeline=per_minute(), builder={"function": "per_minute"})


@asynccontextmanager
async def started(
    config: StoreConfig,
    declarations: list[PipelineDeclaration] | None = None,
    *,
    prune: bool = False,
) -> AsyncIterator[StreamComputingEngine]:
    """An engine over the store, after declaring ``declarations`` (None: no declaration)."""
    with Store(config) as store:
        manager = ChangeStreamManager(store, clock=ManualClock())
        await manager.start()
        engine = StreamComputingEngine(
            store, manager, checkpoint_interval_ms=0, batch_timeout_ms=0, rebuild=rebuild
        )
        try:
            await engine.start()
            if declarations is not None:
                await engine.declare(declarations, owner="config", prune=prune)
            yield engine
        finally:
            await engine.stop()
            await manager.stop()


def total(engine: StreamComputingEngine, name: str) -> int:
    return sum(row["n"] for row in engine.get(name).results().rows)


async def settled(engine: StreamComputingEngine, *names: str) -> None:
    for name in names:
        await settle(engine.get(name), engine.store)


async def test_dropped_pipelines_are_orphaned_held_and_resume_when_declared_again(
    store_config: StoreConfig,
) -> None:
    both = [PipelineDeclaration(sql=SQL), PYTHON]
    async with started(store_config, both) as engine:
        await write(engine.store, [{"page": "a", "at": 1000}])
        await settled(engine, "per_page", "per_minute")
        assert total(engine, "per_page") == total(engine, "per_minute") == 1

    async with started(store_config, []) as engine:
        for name in ("per_page", "per_minute"):
            processor = engine.get(name)
            assert processor.status == "orphaned" and processor.stats()["orphaned"] is True
            assert total(engine, name) == 1  # results stay readable
        pins = {o.name: dict(o.pins) for o in engine.orphans()}
        assert pins == {
            "per_minute": {"pipeline/per_minute": 1},
            "per_page": {"pipeline/per_page": 1},
        }
        await write(engine.store, [{"page": "a", "at": 2000}])  # committed while orphaned

    async with started(store_config) as engine:  # no declaration: held as they were
        assert [p.status for p in engine.list()] == ["orphaned", "orphaned"]
        assert total(engine, "per_minute") == 1
        shown = engine.sql.show_streams().rows or []
        assert shown[0]["orphaned"] is True

    async with started(store_config, both) as engine:  # adopted: nothing missed
        await settled(engine, "per_page", "per_minute")
        assert total(engine, "per_page") == total(engine, "per_minute") == 2
        assert engine.orphans() == ()

    async with started(store_config) as engine:  # a start without a declaration runs them
        assert [p.status for p in engine.list()] == ["running", "running"]

    async with started(store_config, [], prune=True) as engine:
        assert engine.list() == [] and not engine.has_state("per_minute")
        assert engine.sql.streams == {}  # its stream was the declaration's too
        assert engine.store.get_checkpoint("pipeline/per_page") is None


async def test_the_api_and_programs_keep_their_own(store_config: StoreConfig) -> None:
    async with started(store_config, [PipelineDeclaration(sql=SQL)]) as engine:
        with pytest.raises(OwnershipConflict, match="pipeline 'per_page' is declared by"):
            await engine.sql.execute(SQL.replace("CREATE PIPELINE", "CREATE OR REPLACE PIPELINE"))
        await engine.register(per_minute())  # a program's pipeline
        with pytest.raises(OwnershipConflict, match="pipeline 'per_minute' was made through"):
            await engine.declare([PipelineDeclaration(sql=SQL), PYTHON], owner="config")
        with pytest.raises(PipelineDefinitionError, match="may not DROP PIPELINE"):
            await engine.declare([PipelineDeclaration(sql="DROP PIPELINE per_page;")], owner="c")

    async with started(store_config, []) as engine:
        with pytest.raises(Orphaned):
            await engine.sql.execute(SQL.replace("CREATE PIPELINE", "CREATE OR REPLACE PIPELINE"))
        await engine.sql.execute("DROP PIPELINE per_page;")  # an explicit delete is fine
        assert "per_page" not in engine


async def test_a_stream_read_by_a_kept_pipeline_is_not_pruned(store_config: StoreConfig) -> None:
    async with started(store_config, [PipelineDeclaration(sql=SQL)]) as engine:
        reader = SQL.split(";")[1].replace("per_page", "api_reader") + ";"
        await engine.sql.execute(reader)  # made through the API, reads the file's stream
    async with started(store_config, [], prune=True) as engine:
        assert "per_page" not in engine and "api_reader" in engine
        assert list(engine.sql.streams) == ["clicks"]
        assert engine.sql.ownership["stream/clicks"].orphaned


async def test_a_declared_pipeline_may_change_from_sql_to_python(store_config: StoreConfig) -> None:
    stream_only = PipelineDeclaration(sql=SQL.split(";")[0] + ";")
    python = PipelineDeclaration(
        pipeline=per_minute("per_page"),
        builder={"function": "per_minute", "args": {"name": "per_page"}},
    )
    async with started(store_config, [PipelineDeclaration(sql=SQL)]):
        pass
    async with started(store_config, [stream_only, python]) as engine:
        assert engine.get("per_page").origin == "python"
    async with started(store_config) as engine:  # it comes back as what was declared last
        assert [(p.pipeline_name, p.origin, p.status) for p in engine.list()] == [
            ("per_page", "python", "running")
        ]
        assert "per_page" not in engine.sql.pipelines
