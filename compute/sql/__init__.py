"""Stream SQL: scripts of CREATE STREAM / CREATE PIPELINE / DROP / SHOW statements, parsed by
sqlglot with kvdb's dialect and planned into ``StreamPipeline`` s."""

from __future__ import annotations

from .catalog import StreamDefinition
from .dialect import KvdbDialect
from .engine import StatementResult, StreamSQLEngine
from .parser import Statement, parse_script
from .planner import PlannedPipeline, plan_pipeline

__all__ = [
    "KvdbDialect",
    "PlannedPipeline",
    "Statement",
    "StatementResult",
    "StreamDefinition",
    "StreamSQLEngine",
    "parse_script",
    "plan_pipeline",
]
