"""``StreamSQLEngine``: runs SQL scripts against the stream computing engine.

A script is parsed and planned whole before anything is applied, against a scratch copy of
the catalog (so a script may create a stream and then a pipeline reading it): a parse or
planning error applies nothing. Then its statements apply in order. Streams and pipelines
created in SQL are persisted as system records (their statement's text) and come back after
a restart, the pipelines resuming their checkpointed state.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import (
    IncompatibleState,
    PipelineExists,
    SqlError,
    SqlStreamExists,
    StreamInUse,
    UnknownPipeline,
    UnknownSqlStream,
)
from .catalog import StreamDefinition, define_stream
from .parser import Statement, parse_script
from .planner import PlannedPipeline, plan_pipeline

if TYPE_CHECKING:
    from ..engine import StreamComputingEngine

__all__ = ["StatementResult", "StreamSQLEngine"]

log = logging.getLogger("compute.sql")

STREAM_RECORDS = "compute/sql/stream/"
PIPELINE_RECORDS = "compute/sql/pipeline/"


@dataclass(frozen=True)
class StatementResult:
    """What one statement did: ``action`` is created, replaced, unchanged, skipped (IF NOT
    EXISTS / IF EXISTS) or dropped; SHOW statements carry ``columns`` and ``rows``."""

    statement: str
    name: str | None = None
    action: str | None = None
    columns: list[str] | None = None
    rows: list[dict[str, Any]] | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"statement": self.statement}
        if self.name is not None:
            doc["name"] = self.name
        if self.action is not None:
            doc["action"] = self.action
        if self.columns is not None:
            doc["columns"] = self.columns
            doc["rows"] = self.rows
        return doc


Apply = Callable[[], Coroutine[Any, Any, StatementResult]]


class StreamSQLEngine:
    def __init__(self, compute: StreamComputingEngine) -> None:
        self.compute = compute
        self.streams: dict[str, StreamDefinition] = {}
        self.pipelines: dict[str, PlannedPipeline] = {}
        self._lock = asyncio.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bring back the persisted streams, then the pipelines (resuming their state)."""
        store = self.compute.store
        for key, raw in store.list_system_records(STREAM_RECORDS):
            try:
                (statement,) = parse_script(json.loads(raw)["sql"])
                definition = define_stream(statement, statement.text)
            except (SqlError, ValueError, KeyError) as exc:
                log.error("ignoring the unreadable SQL stream %s: %s", key, exc)
                continue
            self.streams[definition.name] = definition
        for key, raw in store.list_system_records(PIPELINE_RECORDS):
            try:
                (statement,) = parse_script(json.loads(raw)["sql"])
                planned = plan_pipeline(statement, self.streams, statement.text)
            except (SqlError, ValueError, KeyError) as exc:
                log.error("cannot restore the SQL pipeline %s: %s", key, exc)
                continue
            try:
                await self.compute.register(planned.pipeline, origin="sql", sql=planned.sql)
            except IncompatibleState:
                log.warning(
                    "pipeline %s: its state is from another version; recomputing", planned.name
                )
                await self.compute.register(
                    planned.pipeline, replace=True, origin="sql", sql=planned.sql
                )
            self.pipelines[planned.name] = planned

    # -- scripts ------------------------------------------------------------------------------

    def parse(self, script: str) -> list[Statement]:
        """Parse only (no catalog needed): for checking a script early, e.g. in settings."""
        return parse_script(script)

    async def execute(self, script: str, *, declared: bool = False) -> list[StatementResult]:
        """Plan the whole script, then apply it. ``declared`` (a node's YAML) makes CREATE
        idempotent: an identical definition is left alone, a different one replaces it."""
        async with self._lock:
            statements = parse_script(script)
            actions = _Plan(self, script, declared).actions(statements)
            return [await apply() for apply in actions]

    # -- applying -----------------------------------------------------------------------------

    async def _create_stream(self, definition: StreamDefinition, action: str) -> StatementResult:
        record = json.dumps({"sql": definition.sql}).encode()
        await self.compute.store.put_system_record(STREAM_RECORDS + definition.name, record)
        self.streams[definition.name] = definition
        return StatementResult("CREATE STREAM", definition.name, action)

    async def _create_pipeline(self, planned: PlannedPipeline, action: str) -> StatementResult:
        await self.compute.register(
            planned.pipeline, replace=action == "replaced", origin="sql", sql=planned.sql
        )
        record = json.dumps({"sql": planned.sql}).encode()
        await self.compute.store.put_system_record(PIPELINE_RECORDS + planned.name, record)
        self.pipelines[planned.name] = planned
        return StatementResult("CREATE PIPELINE", planned.name, action)

    async def _drop_pipeline(self, name: str) -> StatementResult:
        await self.compute.remove(name)
        await self.compute.store.delete_system_record(PIPELINE_RECORDS + name)
        self.pipelines.pop(name, None)
        return StatementResult("DROP PIPELINE", name, "dropped")

    async def forget_pipeline(self, name: str) -> None:
        """The pipeline was removed through the engine: forget its SQL definition too."""
        if self.pipelines.pop(name, None) is not None:
            await self.compute.store.delete_system_record(PIPELINE_RECORDS + name)

    async def _drop_stream(self, name: str) -> StatementResult:
        await self.compute.store.delete_system_record(STREAM_RECORDS + name)
        self.streams.pop(name, None)
        return StatementResult("DROP STREAM", name, "dropped")

    def show_pipelines(self) -> StatementResult:
        columns = [
            "name",
            "origin",
            "status",
            "emit",
            "events_in",
            "late_dropped",
            "windows_fired",
            "watermark",
            "sql",
        ]
        rows = []
        for processor in self.compute.list():
            stats = processor.stats()
            rows.append({name: stats.get(name) for name in columns[:-1]} | {"sql": processor.sql})
        return StatementResult("SHOW PIPELINES", columns=columns, rows=rows)

    def show_streams(self) -> StatementResult:
        columns = ["name", "key_pattern", "columns", "watermark", "sql"]
        rows = [
            {
                "name": stream.name,
                "key_pattern": stream.key_pattern,
                "columns": [f"{name} {kind}" for name, kind in stream.columns],
                "watermark": None
                if stream.watermark_column is None
                else f"{stream.watermark_column} - {stream.out_of_orderness} ms",
                "sql": stream.sql,
            }
            for stream in sorted(self.streams.values(), key=lambda s: s.name)
        ]
        return StatementResult("SHOW STREAMS", columns=columns, rows=rows)


class _Plan:
    """Checks a script against a scratch catalog and returns the steps that apply it."""

    def __init__(self, engine: StreamSQLEngine, script: str, declared: bool) -> None:
        self.engine = engine
        self.script = script
        self.declared = declared
        self.streams = dict(engine.streams)
        self.readers = {name: set(p.streams) for name, p in engine.pipelines.items()}
        self.pipelines = {p.pipeline_name for p in engine.compute.list()} | set(engine.pipelines)

    def actions(self, statements: list[Statement]) -> list[Apply]:
        return [self._action(statement) for statement in statements]

    def _action(self, statement: Statement) -> Apply:
        if statement.kind == "SHOW PIPELINES":
            return lambda: _now(self.engine.show_pipelines())
        if statement.kind == "SHOW STREAMS":
            return lambda: _now(self.engine.show_streams())
        plan = {
            "CREATE STREAM": self._create_stream,
            "CREATE PIPELINE": self._create_pipeline,
            "DROP PIPELINE": self._drop_pipeline,
            "DROP STREAM": self._drop_stream,
        }[statement.kind]
        assert statement.name is not None
        return plan(statement, statement.name)

    def _create_stream(self, statement: Statement, name: str) -> Apply:
        node, engine = statement.node, self.engine
        definition = define_stream(statement, self.script)
        existing = self.streams.get(name)
        action = "created"
        if existing is not None:
            if node.args.get("exists") or (self.declared and existing.sql == definition.sql):
                outcome = "skipped" if not self.declared else "unchanged"
                return _done(StatementResult(statement.kind, name, outcome))
            if not (node.args.get("replace") or self.declared):
                raise SqlStreamExists(name)
            self._check_unread(name)
            action = "replaced"
        self.streams[name] = definition
        return lambda: engine._create_stream(definition, action)

    def _create_pipeline(self, statement: Statement, name: str) -> Apply:
        node, engine = statement.node, self.engine
        planned = plan_pipeline(statement, self.streams, self.script)
        replacing = node.args.get("replace") or self.declared
        action = "created"
        if name in self.pipelines:
            current = engine.pipelines.get(name)
            if node.args.get("exists"):
                return _done(StatementResult(statement.kind, name, "skipped"))
            if self.declared and current is not None and current.sql == planned.sql:
                return _done(StatementResult(statement.kind, name, "unchanged"))
            if not replacing:
                raise PipelineExists(name)
            action = "replaced"
        elif engine.compute.has_state(name) and not replacing:
            stored = engine.compute.stored_fingerprint(name)
            if stored is not None and stored != planned.pipeline.fingerprint():
                raise IncompatibleState(name)
        self.pipelines.add(name)
        self.readers[name] = set(planned.streams)
        return lambda: engine._create_pipeline(planned, action)

    def _drop_pipeline(self, statement: Statement, name: str) -> Apply:
        engine = self.engine
        if name not in self.pipelines and not engine.compute.has_state(name):
            if statement.node.args.get("exists"):
                return _done(StatementResult(statement.kind, name, "skipped"))
            raise UnknownPipeline(name)
        self.pipelines.discard(name)
        self.readers.pop(name, None)
        return lambda: engine._drop_pipeline(name)

    def _drop_stream(self, statement: Statement, name: str) -> Apply:
        engine = self.engine
        if name not in self.streams:
            if statement.node.args.get("exists"):
                return _done(StatementResult(statement.kind, name, "skipped"))
            raise UnknownSqlStream(name)
        self._check_unread(name)
        del self.streams[name]
        return lambda: engine._drop_stream(name)

    def _check_unread(self, stream: str) -> None:
        """A stream may be replaced or dropped only while no pipeline reads it."""
        users = sorted(p for p, used in self.readers.items() if stream in used)
        if users:
            raise StreamInUse(stream, users)


def _done(result: StatementResult) -> Apply:
    return lambda: _now(result)


async def _now(result: StatementResult) -> StatementResult:
    return result
