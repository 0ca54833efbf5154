"""Stream computing: windowed pipelines over the change stream, in Python and in SQL.

``StreamPipeline`` defines a computation (filter, map, key_by, window, aggregate, join, sink);
``StreamComputingEngine`` runs pipelines as change-stream processors with checkpointed state,
and ``StreamSQLEngine`` (``engine.sql``) plans SQL into pipelines. Depends on ``kvdb`` and
``changestream`` only.
"""

from __future__ import annotations

from .aggregates import EMPTY, Aggregate, AggregateSet, Avg, Count, Max, Min, Reduce, Sum
from .declare import PipelineDeclaration, PipelinesDeclared
from .engine import Rebuild, StreamComputingEngine
from .errors import (
    ComputeError,
    IncompatibleState,
    InvalidRecord,
    PipelineDefinitionError,
    PipelineExists,
    SqlError,
    SqlParseError,
    SqlPlanError,
    SqlStreamExists,
    StepError,
    StreamInUse,
    UnknownPipeline,
    UnknownSqlStream,
    UnsupportedSql,
)
from .pipeline import StreamPipeline
from .processor import PipelineProcessor
from .results import Column, ResultTable, ResultUpdate, UpdateSubscription
from .runtime import PipelineRuntime
from .source import Source
from .sql import StatementResult, StreamSQLEngine
from .stages import PipelineOptions
from .timestamps import format_timestamp, parse_timestamp
from .watermark import Watermark
from .windows import Session, Sliding, Tumbling, WindowSpec

__all__ = [
    "EMPTY",
    "Aggregate",
    "AggregateSet",
    "Avg",
    "Column",
    "ComputeError",
    "Count",
    "IncompatibleState",
    "InvalidRecord",
    "Max",
    "Min",
    "PipelineDeclaration",
    "PipelineDefinitionError",
    "PipelineExists",
    "PipelineOptions",
    "PipelineProcessor",
    "PipelineRuntime",
    "PipelinesDeclared",
    "Rebuild",
    "Reduce",
    "ResultTable",
    "ResultUpdate",
    "Session",
    "Sliding",
    "Source",
    "SqlError",
    "SqlParseError",
    "SqlPlanError",
    "SqlStreamExists",
    "StatementResult",
    "StepError",
    "StreamComputingEngine",
    "StreamInUse",
    "StreamPipeline",
    "StreamSQLEngine",
    "Sum",
    "Tumbling",
    "UnknownPipeline",
    "UnknownSqlStream",
    "UnsupportedSql",
    "UpdateSubscription",
    "Watermark",
    "WindowSpec",
    "format_timestamp",
    "parse_timestamp",
]
