"""Errors of stream computing. The root derives from ``kvdb.StructuredError``, the shape every
package's errors share (``code``, ``message``, ``fields``; see ``kvdb/errors.py``).

    ComputeError                                                             (compute_error)
    ├── PipelineDefinitionError   a pipeline that cannot run as written     (invalid_pipeline)
    ├── StepError                 a user callback raised or returned the
    │                             wrong thing; names the pipeline and step  (step_failed)
    ├── UnknownPipeline           no pipeline by that name                   (unknown_pipeline)
    ├── PipelineExists            register() of a name already taken         (pipeline_exists)
    ├── IncompatibleState         stored state was written by a different
    │                             definition of the pipeline                 (incompatible_state)
    ├── UnknownSqlStream          DROP STREAM of a stream never created      (unknown_sql_stream)
    ├── SqlStreamExists           CREATE STREAM of a name already taken      (sql_stream_exists)
    ├── StreamInUse               DROP STREAM while pipelines read it        (stream_in_use)
    ├── InvalidRecord             raised by a decoder: this change event is
    │                             not a record (counted in ``invalid``)      (invalid_record)
    └── SqlError                  SQL that cannot run; ``line`` and ``column``
        │                         say where                                 (sql_error)
        ├── SqlParseError         not valid SQL here, and what was expected  (sql_parse_error)
        └── SqlPlanError          valid SQL that cannot be planned           (sql_plan_error)
            └── UnsupportedSql    a construct outside our subset, by name     (unsupported_sql)

Every error carries ``code`` and ``message`` (what was wrong and how to fix it) plus structured
``fields`` that ``api/`` adds to the error document: ``name`` (and ``pipelines``) for the
errors about one object, ``pipeline`` and ``step`` for step errors, ``line`` and ``column``
(when known) for SQL errors and ``construct`` for unsupported SQL.

``BadCallbackResult`` is internal: a check of a callback's result raises it, and the step that
ran the callback turns it into a ``StepError`` with its own name.
"""

from __future__ import annotations

from kvdb import StructuredError

__all__ = [
    "ComputeError",
    "IncompatibleState",
    "InvalidRecord",
    "PipelineDefinitionError",
    "PipelineExists",
    "SqlError",
    "SqlParseError",
    "SqlPlanError",
    "SqlStreamExists",
    "StepError",
    "StreamInUse",
    "UnknownPipeline",
    "UnknownSqlStream",
    "UnsupportedSql",
]


class ComputeError(StructuredError):
    """Root of stream computing's errors."""

    code = "compute_error"


class BadCallbackResult(Exception):
    """Internal: a user callback returned something it must not; ``problem`` says what."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class PipelineDefinitionError(ComputeError):
    code = "invalid_pipeline"


class StepError(ComputeError):
    """A user callback failed. ``step`` is the step's name, as given or generated."""

    code = "step_failed"

    def __init__(self, pipeline: str, step: str, problem: str) -> None:
        super().__init__(
            f"pipeline {pipeline!r}, step {step!r}: {problem}", pipeline=pipeline, step=step
        )
        self.pipeline = pipeline
        self.step = step
        self.problem = problem


class UnknownPipeline(ComputeError):
    code = "unknown_pipeline"

    def __init__(self, name: str) -> None:
        super().__init__(f"no pipeline named {name!r}; list them with GET /pipelines", name=name)
        self.name = name


class PipelineExists(ComputeError):
    code = "pipeline_exists"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"a pipeline named {name!r} already exists; drop it first, pick another name, or "
            "replace it (CREATE OR REPLACE PIPELINE, register(..., replace=True))",
            name=name,
        )
        self.name = name


class IncompatibleState(ComputeError):
    code = "incompatible_state"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"pipeline {name!r} has stored state from a different definition; register it "
            "with replace=True (or CREATE OR REPLACE) to discard that state and recompute, or "
            "give the new definition another name",
            name=name,
        )
        self.name = name


class UnknownSqlStream(ComputeError):
    code = "unknown_sql_stream"

    def __init__(self, name: str) -> None:
        super().__init__(f"no SQL stream named {name!r}; list them with SHOW STREAMS", name=name)
        self.name = name


class SqlStreamExists(ComputeError):
    code = "sql_stream_exists"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"a SQL stream named {name!r} already exists; use CREATE OR REPLACE STREAM or "
            "drop it first",
            name=name,
        )
        self.name = name


class StreamInUse(ComputeError):
    code = "stream_in_use"

    def __init__(self, name: str, pipelines: list[str]) -> None:
        super().__init__(
            f"SQL stream {name!r} is read by pipeline(s) {', '.join(pipelines)}; drop them first",
            name=name,
            pipelines=pipelines,
        )
        self.name = name


class InvalidRecord(ComputeError):
    """A change event that is not a record of the pipeline (not JSON, no event time...). It is
    skipped and counted, never fatal: one bad value must not stop a pipeline."""

    code = "invalid_record"


class SqlError(ComputeError):
    """SQL that cannot run. ``line`` and ``column`` are 1-based and point into the script."""

    code = "sql_error"

    def __init__(self, problem: str, line: int | None = None, column: int | None = None) -> None:
        where = f"line {line}, column {column}: " if line is not None else ""
        located = {k: v for k, v in (("line", line), ("column", column)) if v is not None}
        super().__init__(f"{where}{problem}", **located)
        self.problem = problem
        self.line = line
        self.column = column


class SqlParseError(SqlError):
    code = "sql_parse_error"


class SqlPlanError(SqlError):
    code = "sql_plan_error"


class UnsupportedSql(SqlPlanError):
    """A construct outside kvdb's SQL subset; ``construct`` names it."""

    code = "unsupported_sql"

    def __init__(
        self, construct: str, hint: str, line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(f"{construct} is not supported: {hint}", line, column)
        self.fields["construct"] = construct
        self.construct = construct
