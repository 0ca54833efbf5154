"""``StreamSQLEngine``: runs SQL scripts against the stream computing engine.

A script is parsed and planned whole before anything is applied, against a scratch copy of
the catalog (so a script may create a stream and then a pipeline reading it): a parse or
planning error applies nothing. Then its statements apply in order. Streams and pipelines
created in SQL are persisted as system records (their statement's text) and come back after
a restart, the pipelines resuming their checkpointed state.

Those a configuration file declares carry their owner in the record (``compute/declare.py``):
a script sent through the API does not replace them, and an orphaned pipeline comes back held
(its results readable), not running.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from changestream import Orphaned, Ownership, OwnershipConflict

from ..errors import (
    IncompatibleState,
    PipelineExists,
    SqlError,
    SqlPlanError,
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
        self.ownership: dict[str, Ownership] = {}  # "stream/<name>", "pipeline/<name>"
        self._owner: str | None = None  # of the script being applied (execute's owner)
        self._loaded = False
        self._lock = asyncio.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    def load(self) -> None:
        """Read the persisted streams and pipelines (once), without running anything."""
        if self._loaded:
            return
        self._loaded = True
        store = self.compute.store
        for key, raw in store.list_system_records(STREAM_RECORDS):
            try:
                doc, ownership = Ownership.split(json.loads(raw))
                (statement,) = parse_script(doc["sql"])
                definition = define_stream(statement, statement.text)
            except (SqlError, ValueError, KeyError, AttributeError) as exc:
                log.error("ignoring the unreadable SQL stream %s: %s", key, exc)
                continue
            self.streams[definition.name] = definition
            self.ownership[f"stream/{definition.name}"] = ownership
        for key, raw in store.list_system_records(PIPELINE_RECORDS):
            try:
                doc, ownership = Ownership.split(json.loads(raw))
                (statement,) = parse_script(doc["sql"])
                planned = plan_pipeline(statement, self.streams, statement.text)
            except (SqlError, ValueError, KeyError, AttributeError) as exc:
                log.error("cannot restore the SQL pipeline %s: %s", key, exc)
                continue
            self.pipelines[planned.name] = planned
            self.ownership[f"pipeline/{planned.name}"] = ownership

    async def start(self) -> None:
        """Bring back the persisted streams, then the pipelines (resuming their state); an
        orphaned pipeline is held, its results readable, not run."""
        self.load()
        for name, planned in self.pipelines.items():
            ownership = self.ownership.get(f"pipeline/{name}", Ownership())
            if ownership.orphaned:
                self.compute.hold(planned.pipeline, ownership, planned.sql)
            else:
                await self._restore(planned, ownership)

    async def _restore(self, planned: PlannedPipeline, ownership: Ownership) -> None:
        register = self.compute.register
        try:
            await register(planned.pipeline, origin="sql", sql=planned.sql, ownership=ownership)
        except IncompatibleState:
            log.warning("pipeline %s: its state is from another version; recomputing", planned.name)
            await register(
                planned.pipeline, replace=True, origin="sql", sql=planned.sql, ownership=ownership
            )

    # -- scripts ------------------------------------------------------------------------------

    def parse(self, script: str) -> list[Statement]:
        """Parse only (no catalog needed): for checking a script early, e.g. in settings."""
        return parse_script(script)

    async def execute(
        self, script: str, *, declared: bool = False, owner: str | None = None
    ) -> list[StatementResult]:
        """Plan the whole script, then apply it. ``declared`` (a node's YAML) makes CREATE
        idempotent: an identical definition is left alone, a different one replaces it.
        ``owner`` (which implies ``declared``) is stored with what the script creates; call
        it through ``StreamComputingEngine.declare``, which checks ownership first. Without
        one, the script may not replace what an owner declared."""
        async with self._lock:
            statements = parse_script(script)
            if owner is None:
                self._check_not_declared(statements)
            try:
                actions = _Plan(self, script, declared or owner is not None).actions(statements)
            except RecursionError:
                raise SqlPlanError(
                    "an expression is too deep to plan (a very long chain of operators, or "
                    "nesting): simplify it"
                ) from None
            self._owner = owner
            try:
                return [await apply() for apply in actions]
            finally:
                self._owner = None

    def _check_not_declared(self, statements: list[Statement]) -> None:
        """An API script may drop what a file declared (an explicit delete) but not replace
        it, nor touch an orphan but to drop it."""
        for statement in statements:
            if not statement.kind.startswith("CREATE") or statement.name is None:
                continue
            kind = statement.kind.removeprefix("CREATE ").lower()
            ownership = self.ownership.get(f"{kind}/{statement.name}", Ownership())
            if ownership.owner is None or statement.node.args.get("exists"):
                continue
            label = "SQL stream" if kind == "stream" else "pipeline"
            if ownership.orphaned:
                raise Orphaned(label, statement.name, ownership.owner)
            if statement.node.args.get("replace"):
                raise OwnershipConflict.not_the_api(label, statement.name, ownership.owner)

    async def set_ownership(self, kind: str, name: str, ownership: Ownership) -> None:
        """Rewrite the record of SQL ``kind`` (``stream`` or ``pipeline``) ``name`` with
        ``ownership`` (a declaration adopting, claiming or orphaning it)."""
        prefix = STREAM_RECORDS if kind == "stream" else PIPELINE_RECORDS
        sql = self.streams[name].sql if kind == "stream" else self.pipelines[name].sql
        record = json.dumps({"sql": sql, **ownership.to_fields()}).encode()
        await self.compute.store.put_system_record(prefix + name, record)
        self.ownership[f"{kind}/{name}"] = ownership

    def _created_ownership(self) -> Ownership:
        return Ownership(self._owner)

    # -- applying -----------------------------------------------------------------------------

    async def _create_stream(self, definition: StreamDefinition, action: str) -> StatementResult:
        ownership = self._created_ownership()
        record = json.dumps({"sql": definition.sql, **ownership.to_fields()}).encode()
        await self.compute.store.put_system_record(STREAM_RECORDS + definition.name, record)
        self.streams[definition.name] = definition
        self.ownership[f"stream/{definition.name}"] = ownership
        return StatementResult("CREATE STREAM", definition.name, action)

    async def _create_pipeline(self, planned: PlannedPipeline, action: str) -> StatementResult:
        ownership = self._created_ownership()
        await self.compute.register(
            planned.pipeline, replace=action == "replaced", origin="sql", sql=planned.sql,
            ownership=ownership,
        )  # fmt: skip
        record = json.dumps({"sql": planned.sql, **ownership.to_fields()}).encode()
        await self.compute.store.put_system_record(PIPELINE_RECORDS + planned.name, record)
        self.pipelines[planned.name] = planned
        self.ownership[f"pipeline/{planned.name}"] = ownership
        return StatementResult("CREATE PIPELINE", planned.name, action)

    async def _drop_pipeline(self, name: str) -> StatementResult:
        await self.compute.remove(name)
        await self.compute.store.delete_system_record(PIPELINE_RECORDS + name)
        self.pipelines.pop(name, None)
        self.ownership.pop(f"pipeline/{name}", None)
        return StatementResult("DROP PIPELINE", name, "dropped")

    async def forget_pipeline(self, name: str) -> None:
        """The pipeline was removed through the engine: forget its SQL definition too."""
        self.ownership.pop(f"pipeline/{name}", None)
        if self.pipelines.pop(name, None) is not None:
            await self.compute.store.delete_system_record(PIPELINE_RECORDS + name)

    async def _drop_stream(self, name: str) -> StatementResult:
        await self.compute.store.delete_system_record(STREAM_RECORDS + name)
        self.streams.pop(name, None)
        self.ownership.pop(f"stream/{name}", None)
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
        columns = ["name", "key_pattern", "columns", "watermark", "orphaned", "sql"]
        rows = [
            {
                "name": stream.name,
                "key_pattern": stream.key_pattern,
                "columns": [f"{name} {kind}" for name, kind in stream.columns],
                "watermark": None
                if stream.watermark_column is None
                else f"{stream.watermark_column} - {stream.out_of_orderness} ms",
                "orphaned": self.ownership.get(f"stream/{stream.name}", Ownership()).orphaned,
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
