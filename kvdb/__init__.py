"""kvdb storage: LMDB, HLC versions, and the change log written in the same transaction as
the data. This package imports no other kvdb package."""

from __future__ import annotations

from .checkpoints import Checkpoint
from .config import Durability, Limits, RetentionPolicy, StoreConfig
from .errors import (
    BatchTooLarge,
    Compacted,
    DataDirLocked,
    InvalidKey,
    KvdbError,
    PreconditionFailed,
    ReservedKey,
    StorageError,
    StorageFull,
    StoreClosed,
    StructuredError,
    ValidationError,
    ValueTooLarge,
)
from .events import ChangeEvent, EventType
from .hlc import HybridLogicalClock, hlc_to_ms
from .ops import BatchResult, Delete, Entry, Put, ScanPage, WriteResult
from .store import Store, StoreStats
from .writer import CommitListener, WriteTask

__all__ = [
    "BatchResult",
    "BatchTooLarge",
    "ChangeEvent",
    "Checkpoint",
    "CommitListener",
    "Compacted",
    "DataDirLocked",
    "Delete",
    "Durability",
    "Entry",
    "EventType",
    "HybridLogicalClock",
    "InvalidKey",
    "KvdbError",
    "Limits",
    "PreconditionFailed",
    "Put",
    "ReservedKey",
    "RetentionPolicy",
    "ScanPage",
    "StorageError",
    "StorageFull",
    "Store",
    "StoreClosed",
    "StoreConfig",
    "StoreStats",
    "StructuredError",
    "ValidationError",
    "ValueTooLarge",
    "WriteResult",
    "WriteTask",
    "hlc_to_ms",
]
