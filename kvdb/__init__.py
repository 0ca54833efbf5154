"""kvdb storage: LMDB, HLC versions, and the change log written in the same transaction as
the data. This package imports no other kvdb package."""

from __future__ import annotations

from .checkpoints import Checkpoint
from .config import Durability, Limits, RetentionPolicy, StoreConfig
from .errors import (
    BatchTooLarge,
    ClockSkew,
    Compacted,
    DataDirLocked,
    EpochMismatch,
    InvalidContentType,
    InvalidKey,
    KvdbError,
    PreconditionFailed,
    ReplicationError,
    ReservedKey,
    SequenceGap,
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
from .replica import Replica
from .replication import (
    ApplyResult,
    ConflictRecord,
    InboundCheckpoint,
    RemoteBatch,
    RemoteItem,
    Resolution,
    Resolver,
    VersionedValue,
    conflict_id,
)
from .store import Store, StoreStats
from .versions import ANY_VERSION, NO_VERSION, Version, VersionVector
from .writer import CommitListener, WriteTask

__all__ = [
    "ANY_VERSION",
    "NO_VERSION",
    "ApplyResult",
    "BatchResult",
    "BatchTooLarge",
    "ChangeEvent",
    "Checkpoint",
    "ClockSkew",
    "CommitListener",
    "Compacted",
    "ConflictRecord",
    "DataDirLocked",
    "Delete",
    "Durability",
    "Entry",
    "EpochMismatch",
    "EventType",
    "HybridLogicalClock",
    "InboundCheckpoint",
    "InvalidContentType",
    "InvalidKey",
    "KvdbError",
    "Limits",
    "PreconditionFailed",
    "Put",
    "RemoteBatch",
    "RemoteItem",
    "Replica",
    "ReplicationError",
    "ReservedKey",
    "Resolution",
    "Resolver",
    "RetentionPolicy",
    "ScanPage",
    "SequenceGap",
    "StorageError",
    "StorageFull",
    "Store",
    "StoreClosed",
    "StoreConfig",
    "StoreStats",
    "StructuredError",
    "ValidationError",
    "ValueTooLarge",
    "Version",
    "VersionVector",
    "VersionedValue",
    "WriteResult",
    "WriteTask",
    "conflict_id",
    "hlc_to_ms",
]
