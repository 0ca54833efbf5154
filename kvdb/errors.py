"""Errors raised by the storage layer.

Every error carries a stable ``code`` (used by ``api/`` for the JSON error body), a message
that says what was wrong and how to fix it, and structured fields where a caller needs them.
``lmdb.Error`` never escapes this package: it is translated here, ``from`` the original.

    KvdbError
    ├── ValidationError            bad input, nothing was written          (code: invalid_*)
    │   ├── InvalidKey             empty, too long, not UTF-8              (invalid_key)
    │   ├── ReservedKey            user key starting with "_"              (reserved_key)
    │   ├── ValueTooLarge          value over max_value_bytes              (value_too_large)
    │   └── BatchTooLarge          batch over max_batch_ops/bytes          (batch_too_large)
    ├── PreconditionFailed         If-Match / If-None-Match did not hold   (precondition_failed)
    ├── Compacted                  asked for events older than the log     (compacted)
    ├── ReplicationError           a replication batch cannot be applied
    │   ├── SequenceGap            batch starts past the inbound checkpoint (sequence_gap)
    │   ├── EpochMismatch          a store was wiped or restored           (epoch_mismatch)
    │   └── ClockSkew              versions too far ahead of the clock     (clock_skew)
    ├── StorageFull                disk or map_size limit reached          (storage_full)
    ├── DataDirLocked              another process owns the data dir       (data_dir_locked)
    ├── StoreClosed                the store is closed or closing          (store_closed)
    └── StorageError               any other storage failure               (storage_error)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .versions import Version

__all__ = [
    "BatchTooLarge",
    "ClockSkew",
    "Compacted",
    "DataDirLocked",
    "EpochMismatch",
    "InvalidKey",
    "KvdbError",
    "PreconditionFailed",
    "ReplicationError",
    "ReservedKey",
    "SequenceGap",
    "StorageError",
    "StorageFull",
    "StoreClosed",
    "ValidationError",
    "ValueTooLarge",
]


class KvdbError(Exception):
    """Root of every error raised by kvdb packages."""

    code = "kvdb_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(KvdbError):
    code = "invalid_request"


class InvalidKey(ValidationError):
    code = "invalid_key"


class ReservedKey(ValidationError):
    code = "reserved_key"


class ValueTooLarge(ValidationError):
    code = "value_too_large"

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class BatchTooLarge(ValidationError):
    code = "batch_too_large"

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class PreconditionFailed(KvdbError):
    """A conditional write found a different version than the one it required."""

    code = "precondition_failed"

    def __init__(self, message: str, *, key: str, current_version: Version | None) -> None:
        super().__init__(message)
        self.key = key
        self.current_version = current_version


class Compacted(KvdbError):
    """Events after ``since`` are no longer all in the log; resume from ``oldest_seq - 1``
    after re-reading state (a snapshot), or accept the gap explicitly."""

    code = "compacted"

    def __init__(self, since: int, oldest_seq: int) -> None:
        super().__init__(
            f"events after seq {since} were compacted; the oldest retained event is "
            f"seq {oldest_seq}: re-read the current state (scan) and resume from "
            f"since={oldest_seq - 1}"
        )
        self.since = since
        self.oldest_seq = oldest_seq


class ReplicationError(KvdbError):
    """A replication batch that cannot be applied; nothing of it was written. ``fields``
    says where the sender stands."""

    code = "replication_error"

    def __init__(self, message: str, **fields: object) -> None:
        super().__init__(message)
        self.fields = fields


class SequenceGap(ReplicationError):
    code = "sequence_gap"


class EpochMismatch(ReplicationError):
    code = "epoch_mismatch"


class ClockSkew(ReplicationError):
    code = "clock_skew"


class StorageFull(KvdbError):
    code = "storage_full"


class DataDirLocked(KvdbError):
    code = "data_dir_locked"


class StoreClosed(KvdbError):
    code = "store_closed"


class StorageError(KvdbError):
    code = "storage_error"
