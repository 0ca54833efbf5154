"""Declaring pipelines: the rule of ``changestream/declare.py`` for SQL scripts and Python
pipelines a configuration file names.

A declaration is a list of ``PipelineDeclaration``: SQL scripts of CREATE STREAM and CREATE
PIPELINE statements, and Python pipelines with the ``builder`` reference they were built from
(stored, so the engine can build them again after a restart). Two kinds of object follow the
rule: pipelines (SQL and Python share one namespace) and SQL streams. ``declare_pipelines``
plans both whole, checks ownership, and then applies:

1. orphans declared again are resumed from their checkpoint (adopted);
2. the scripts run with the owner's name (an identical definition is left alone, a changed
   one replaces the old and is recomputed from the log), the Python pipelines register;
3. pipelines (and SQL streams) no longer declared are orphaned: stopped, their state and
   results kept and readable, their checkpoint still pinning retention;
4. with ``prune``, orphans are removed with their state and checkpoint (a SQL stream that a
   pipeline still reads stays, orphaned).

A script in a declaration may not DROP: leaving an object out orphans it, and a file must not
delete what the API made. ``DELETE /pipelines/<name>`` or ``DROP`` through the API delete.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from changestream import DeclarePlan, Ownership, plan_declaration

from .errors import ComputeError, PipelineDefinitionError
from .pipeline import StreamPipeline
from .sql.parser import parse_script

if TYPE_CHECKING:
    from .engine import StreamComputingEngine

__all__ = ["PipelineDeclaration", "PipelinesDeclared", "declare_pipelines"]

log = logging.getLogger("compute.declare")


@dataclass(frozen=True)
class PipelineDeclaration:
    """One declared entry: ``sql``, a script; or ``pipeline``, a Python pipeline, with the
    JSON ``builder`` reference that ``StreamComputingEngine.rebuild`` builds it from."""

    sql: str | None = None
    pipeline: StreamPipeline | None = None
    builder: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if (self.sql is None) == (self.pipeline is None):
            raise PipelineDefinitionError("declare either a SQL script or a Python pipeline")


@dataclass(frozen=True)
class _Declared:
    """A declared object and what identifies its definition."""

    name: str
    definition: Any
    source: PipelineDeclaration


@dataclass(frozen=True)
class PipelinesDeclared:
    """What a declaration did to pipelines and to SQL streams."""

    pipelines: DeclarePlan[_Declared]
    streams: DeclarePlan[_Declared]


def _statements(declarations: Sequence[PipelineDeclaration]) -> tuple[list[_Declared], ...]:
    streams: list[_Declared] = []
    pipelines: list[_Declared] = []
    for declaration in declarations:
        if declaration.pipeline is not None:
            pipelines.append(_python(declaration))
            continue
        assert declaration.sql is not None
        for statement in parse_script(declaration.sql):
            if statement.kind.startswith("DROP"):
                raise PipelineDefinitionError(
                    f"a declared script may not {statement.kind}: leave the object out of the "
                    "declaration instead (it is then orphaned, and pruned with prune: true), "
                    "or drop it through the API"
                )
            if statement.kind == "CREATE STREAM" and statement.name is not None:
                streams.append(_Declared(statement.name, statement.text, declaration))
            elif statement.kind == "CREATE PIPELINE" and statement.name is not None:
                pipelines.append(_Declared(statement.name, statement.text, declaration))
    return streams, pipelines


def _python(declaration: PipelineDeclaration) -> _Declared:
    pipeline = declaration.pipeline
    assert pipeline is not None
    definition = {"builder": dict(declaration.builder or {}), "fingerprint": pipeline.fingerprint()}
    return _Declared(pipeline.name, definition, declaration)


def _existing(engine: StreamComputingEngine) -> tuple[dict[str, Any], dict[str, Any]]:
    """What exists, with its ownership: SQL streams, and every pipeline (SQL, declared
    Python, and those a program registered, which nobody may declare)."""
    from .engine import PYTHON_RECORDS

    sql = engine.sql
    streams = {
        name: (d.sql, sql.ownership.get(f"stream/{name}", Ownership()))
        for name, d in sql.streams.items()
    }
    pipelines: dict[str, Any] = {
        p.pipeline_name: (None, p.ownership) for p in engine.list() if p.origin == "python"
    }
    for key, raw in engine.store.list_system_records(PYTHON_RECORDS):
        doc, ownership = Ownership.split(json.loads(raw))
        pipelines[key[len(PYTHON_RECORDS) :]] = (doc, ownership)
    for name, planned in sql.pipelines.items():
        pipelines[name] = (planned.sql, sql.ownership.get(f"pipeline/{name}", Ownership()))
    return streams, pipelines


def _same_sql(declared: _Declared, stored: Any) -> bool:
    return isinstance(declared.definition, str) and declared.definition == stored


async def declare_pipelines(
    engine: StreamComputingEngine,
    declarations: Sequence[PipelineDeclaration],
    *,
    owner: str,
    prune: bool,
    dry_run: bool = False,
) -> PipelinesDeclared:
    """See the module docstring. Raises ``OwnershipConflict`` (nothing applied) for a name
    made through the API or by a program, or declared twice. ``dry_run`` only plans and
    checks (the engine's SQL catalog must be loaded: ``engine.sql.load()``)."""
    from .engine import PYTHON_RECORDS

    declared_streams, declared_pipelines = _statements(declarations)
    existing_streams, existing_pipelines = _existing(engine)
    # An object written before owners were stored is claimed if its text is the very one
    # declared (it was the file's); any other unowned one is the API's.
    streams = plan_declaration(
        "SQL stream", declared_streams, existing_streams, owner=owner, prune=prune,
        same=lambda d, stored: d.definition == stored, claim=_same_sql,
    )  # fmt: skip
    pipelines = plan_declaration(
        "pipeline", declared_pipelines, existing_pipelines, owner=owner, prune=prune,
        same=lambda d, stored: d.definition == stored, claim=_same_sql,
    )  # fmt: skip
    if dry_run:
        return PipelinesDeclared(pipelines, streams)
    sql = engine.sql
    mine = Ownership(owner)
    for item in pipelines.unchanged:  # running as declared, unless adopted or claimed
        if item.name in pipelines.adopt or item.name not in engine:
            await _resume(engine, item, mine)
        elif item.name in pipelines.claimed:
            engine.get(item.name).ownership = mine
            await sql.set_ownership("pipeline", item.name, mine)
    for item in streams.unchanged:
        if streams.rewrites(item.name):
            await sql.set_ownership("stream", item.name, mine)
    for index, declaration in enumerate(declarations):
        try:
            if declaration.sql is not None:
                await sql.execute(declaration.sql, owner=owner)
            elif any(item.source is declaration for item in (*pipelines.create, *pipelines.update)):
                assert declaration.pipeline is not None
                await _register_python(engine, _python(declaration), mine)
        except ComputeError as exc:
            exc.fields.setdefault("declaration", index)  # which entry, for the caller's message
            raise
    for item in (*pipelines.create, *pipelines.update):  # a Python one may become SQL
        if isinstance(item.definition, str):
            await engine.store.delete_system_record(PYTHON_RECORDS + item.name)
    for name in pipelines.orphan:
        if name in engine:
            await engine.orphan(name)
        if name in sql.pipelines:
            await sql.set_ownership("pipeline", name, mine.orphan())
        else:
            await _put_python(engine, name, existing_pipelines[name][0], mine.orphan())
    for name in streams.orphan:
        await sql.set_ownership("stream", name, mine.orphan())
    for name in pipelines.prune:
        if name in engine or engine.has_state(name):
            await engine.remove(name)
        await engine.store.delete_system_record(PYTHON_RECORDS + name)
        await sql.forget_pipeline(name)
        log.warning(
            "pruned pipeline %s (no longer declared by %s), its state and checkpoint", name, owner
        )
    for name in streams.prune:
        readers = sorted(p for p, planned in sql.pipelines.items() if name in planned.streams)
        if readers:
            log.warning(
                "SQL stream %s is not pruned: pipeline(s) %s read it; it stays orphaned",
                name, ", ".join(readers),
            )  # fmt: skip
            await sql.set_ownership("stream", name, mine.orphan())
            continue
        await sql.execute(f"DROP STREAM {name}")
        log.warning("pruned SQL stream %s (no longer declared by %s)", name, owner)
    for name in pipelines.adopt:
        log.info("pipeline %s is declared by %s again: resuming it", name, owner)
    return PipelinesDeclared(pipelines, streams)


async def _resume(engine: StreamComputingEngine, item: _Declared, ownership: Ownership) -> None:
    """Run a declared pipeline whose definition is unchanged again, from its checkpoint."""
    if not isinstance(item.definition, str):
        await _register_python(engine, item, ownership)
        return
    planned = engine.sql.pipelines[item.name]
    await engine.register(
        planned.pipeline, replace=True, origin="sql", sql=planned.sql, ownership=ownership
    )
    await engine.sql.set_ownership("pipeline", item.name, ownership)


async def _register_python(
    engine: StreamComputingEngine, item: _Declared, ownership: Ownership
) -> None:
    pipeline = item.source.pipeline
    assert pipeline is not None
    await engine.register(pipeline, replace=True, origin="python", ownership=ownership)
    await engine.sql.forget_pipeline(item.name)  # a SQL one may become Python
    await _put_python(engine, item.name, item.definition, ownership)


async def _put_python(
    engine: StreamComputingEngine, name: str, doc: Any, ownership: Ownership
) -> None:
    from .engine import PYTHON_RECORDS

    record = json.dumps({**(doc or {}), **ownership.to_fields()}, sort_keys=True).encode()
    await engine.store.put_system_record(PYTHON_RECORDS + name, record)
