"""Change streams: filtered, batched, resumable views of the change log, for processors and
live subscribers; and the declaration rule every package applies to what a configuration file
declares (``declare.py``). Depends on ``kvdb`` only."""

from __future__ import annotations

from .clock import Clock, ManualClock, SystemClock
from .config import OverflowPolicy, StreamConfig
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
from .filters import EventFilter, compile_pattern, parse_event_types
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
    "ManualClock",
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
    "parse_event_types",
    "plan_declaration",
    "warn_about_orphans",
]
