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
the file, line and field; the pipelines are built and started by the node. The file is the
source of truth: a pipeline whose definition changed replaces the old one (its state is
recomputed from the change log), an unchanged one resumes its saved state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from changestream import resolve_import_path
from compute import (
    ComputeError,
    SqlError,
    StreamComputingEngine,
    StreamPipeline,
)
from compute.sql import parse_script

from ..errors import ConfigError

__all__ = ["PipelineSettings", "start_pipelines"]


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
                parse_script(script)
            except SqlError as exc:
                raise ValueError(f"in the SQL: {exc.message}") from None
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
    builder = resolve_import_path(entry.function)
    try:
        pipeline = builder(**entry.args)
    except ComputeError as exc:
        raise ConfigError(f"pipelines: {entry.label}: {exc.message}") from exc
    except Exception as exc:
        raise ConfigError(
            f"pipelines: {entry.label}: the builder raised {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(pipeline, StreamPipeline):
        raise ConfigError(
            f"pipelines: {entry.label}: the builder returned {type(pipeline).__name__}; it must "
            "return a StreamPipeline"
        )
    return pipeline


async def start_pipelines(
    compute: StreamComputingEngine, entries: Sequence[PipelineSettings], source: str | None
) -> None:
    """Register the configured pipelines (SQL ones idempotently); errors name the entry."""
    where = source or "settings"
    built: set[str] = set()
    for entry in entries:
        try:
            if entry.sql is not None:
                await compute.sql.execute(entry.sql, declared=True)
                continue
            pipeline = build_pipeline(entry)
            if pipeline.name in built:
                raise ConfigError(
                    f"pipelines: {entry.label}: another entry already built a pipeline named "
                    f"{pipeline.name!r}; pipeline names must be unique"
                )
            built.add(pipeline.name)
            await compute.register(pipeline, replace=True)
        except ComputeError as exc:
            raise ConfigError(f"{where}: pipelines: {entry.label}: {exc.message}") from exc
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
