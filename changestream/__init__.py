"""Change streams: filtered, batched, resumable views of the change log, for processors and
live subscribers; and the declaration rule every package applies to what a configuration file
declares (``declare.py``). Depends on ``kvdb`` only."""

from __future__ import annotations

from .callables import is_async_callable, resolve_import_path
from .clock import Clock, SystemClock
from .config import OverflowPolicy, StreamConfig, config_from_dict
from .consumer import Consumer, ConsumerStats
from .cursor import Batch, Cursor, CursorState
from .declare import DeclarePlan, Orphan, Ownership, plan_declaration, warn_about_orphans
from .errors import (
    ChangeStreamError,
    ConsumerBusy,
    CursorClosed,
    InvalidAck,
    InvalidPattern,
    InvalidStreamConfig,
    Orphaned,
    OwnershipConflict,
    StreamExists,
    UnknownStream,
)
from .filters import (
    EventFilter,
    compile_pattern,
    compile_pattern_set,
    parse_event_types,
    parse_origins,
)
from .manager import ChangeStreamManager
from .processor import FunctionProcessor, StreamProcessor
from .stream import ChangeStream

__all__ = [
    "Batch",
    "ChangeStream",
    "ChangeStreamError",
    "ChangeStreamManager",
    "Clock",
    "Consumer",
    "ConsumerBusy",
    "ConsumerStats",
    "Cursor",
    "CursorClosed",
    "CursorState",
    "DeclarePlan",
    "EventFilter",
    "FunctionProcessor",
    "InvalidAck",
    "InvalidPattern",
    "InvalidStreamConfig",
    "Orphan",
    "Orphaned",
    "OverflowPolicy",
    "Ownership",
    "OwnershipConflict",
    "StreamConfig",
    "StreamExists",
    "StreamProcessor",
    "SystemClock",
    "UnknownStream",
    "compile_pattern",
    "compile_pattern_set",
    "config_from_dict",
    "is_async_callable",
    "parse_event_types",
    "parse_origins",
    "plan_declaration",
    "resolve_import_path",
    "warn_about_orphans",
]
