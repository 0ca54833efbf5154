"""The ``pipelines:`` section of a node's YAML: stream-computing pipelines started with the node.

Each entry is either a Python pipeline, ``function: package.module:builder`` (a function that
returns a ``StreamPipeline``; ``args`` are passed to it as keyword arguments), or ``sql:``, a
script of CREATE STREAM / CREATE PIPELINE statements::

    pipelines:
      - function: shop.pipelines:revenue_per_minute
        args: {currency: EUR}
      - sql: |
          CREATE STREAM clicks (page STRING, at TIMESTAMP) WITH (key_pattern = 'clicks/.*');
          CREATE PIPELINE clicks_per_page AS SELECT page, window_start, COUNT(*) AS n
            FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(at), INTERVAL '1' MINUTE))
            GROUP BY page, window_start, window_end;

Import paths and SQL syntax are checked when the file is loaded, so mistakes are reported with
the file, line and field; the pipelines are built and started by the node. They are the
file's declarations (``compute/declare.py``): a pipeline whose definition changed replaces
the old one (its state is recomputed from the change log), an unchanged one resumes its saved
state, and one the file no longer declares is orphaned (stopped, its results kept) until it is
deleted or pruned. A script may not DROP: leave the object out instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from changestream import OwnershipConflict, resolve_import_path
from compute import (
    ComputeError,
    PipelineDeclaration,
    SqlError,
    StreamComputingEngine,
    StreamPipeline,
)
from compute.sql import parse_script

from ..errors import ConfigError

__all__ = ["DeclaredPipelines", "PipelineSettings", "rebuild_pipeline"]


class PipelineSettings(BaseModel):
    """One entry of ``pipelines:``: ``function`` (with optional ``args``) or ``sql``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    function: str | None = None
    args: dict[str, Any] = {}
    sql: str | None = None

    @field_validator("function")
    @classmethod
    def _importable(cls, path: str | None) -> str | None:
        if path is not None:
            resolve_import_path(path)
        return path

    @field_validator("sql")
    @classmethod
    def _parses(cls, script: str | None) -> str | None:
        if script is not None:
            try:
                statements = parse_script(script)
            except SqlError as exc:
                raise ValueError(f"in the SQL: {exc.message}") from None
            for statement in statements:
                if statement.kind.startswith("DROP"):
                    raise ValueError(
                        f"line {statement.line}: a file declares what exists, so it may not "
                        f"{statement.kind}: leave the object out (it is orphaned, and removed "
                        "with prune: true), or drop it through POST /sql"
                    )
        return script

    @model_validator(mode="after")
    def _one_kind(self) -> PipelineSettings:
        if (self.function is None) == (self.sql is None):
            raise ValueError(
                "give either function (package.module:builder) or sql (a script), not both or "
                "neither"
            )
        if self.args and self.function is None:
            raise ValueError("args go with function: they are the builder's keyword arguments")
        return self

    @property
    def label(self) -> str:
        return f"function {self.function}" if self.function else "sql"


def build_pipeline(entry: PipelineSettings) -> StreamPipeline:
    assert entry.function is not None
    try:
        return rebuild_pipeline({"function": entry.function, "args": entry.args})
    except ConfigError as exc:
        raise ConfigError(f"pipelines: {entry.label}: {exc}") from exc


def rebuild_pipeline(builder: Mapping[str, Any]) -> StreamPipeline:
    """The pipeline that ``{"function": "package.module:builder", "args": {...}}`` builds:
    how the engine builds a declared Python pipeline again after a restart."""
    function = builder.get("function")
    try:
        make = resolve_import_path(str(function))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        pipeline = make(**builder.get("args", {}))
    except ComputeError as exc:
        raise ConfigError(exc.message) from exc
    except Exception as exc:
        raise ConfigError(f"the builder raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(pipeline, StreamPipeline):
        raise ConfigError(
            f"the builder returned {type(pipeline).__name__}; it must return a StreamPipeline"
        )
    return pipeline


class DeclaredPipelines:
    """The file's ``pipelines:`` as declarations (Python ones built once), and their
    declaration with errors that name the entry (see the module docstring)."""

    def __init__(self, entries: Sequence[PipelineSettings], where: Callable[..., str]) -> None:
        self.entries = entries
        self.where = where
        self.declarations: list[PipelineDeclaration] = []
        self.names: dict[str, int] = {}  # pipeline or SQL stream name -> entry index
        for index, entry in enumerate(entries):
            if entry.sql is not None:
                self.declarations.append(PipelineDeclaration(sql=entry.sql))
                for statement in parse_script(entry.sql):
                    if statement.name is not None:
                        self.names.setdefault(statement.name, index)
                continue
            try:
                pipeline = build_pipeline(entry)
            except ConfigError as exc:
                raise ConfigError(f"{self._where(index)}: {exc}") from exc
            if pipeline.name in self.names:
                raise ConfigError(
                    f"{self._where(index)}: pipelines: {entry.label}: another entry already "
                    f"built a pipeline named {pipeline.name!r}; pipeline names must be unique"
                )
            self.names[pipeline.name] = index
            builder = {"function": entry.function, "args": entry.args}
            self.declarations.append(PipelineDeclaration(pipeline=pipeline, builder=builder))

    def _where(self, index: int) -> str:
        field = "sql" if self.entries[index].sql is not None else "function"
        return str(self.where("pipelines", index, field))

    async def declare(
        self, compute: StreamComputingEngine, *, owner: str, prune: bool, dry_run: bool = False
    ) -> None:
        try:
            await compute.declare(self.declarations, owner=owner, prune=prune, dry_run=dry_run)
        except OwnershipConflict as exc:
            raise ConfigError(f"{self._where(self.names.get(exc.name, 0))}: {exc.message}") from exc
        except ComputeError as exc:
            index = exc.fields.get("declaration", 0)
            label = self.entries[index].label
            raise ConfigError(f"{self._where(index)}: pipelines: {label}: {exc.message}") from exc
