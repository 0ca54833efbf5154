"""Errors raised by the storage layer, and the shape every kvdb package's errors share.

``StructuredError`` is that shape: a stable ``code`` (the JSON error body's ``error``), a
``message`` that says what was wrong and how to fix it, and ``fields``, the structured detail a
caller may act on (``oldest_seq``, ``current_version``, ``limit``...), JSON-ready: ``api/``
adds them to the error document as they are (so a version, which exceeds 2**53, is a string
there, as in a change event's JSON form). Subclasses also keep the detail as typed attributes.

Each package has one root of its own, derived from ``StructuredError`` and from nothing else
of another package: ``KvdbError`` here, ``ChangeStreamError``, ``EventBusError``, ``SyncError``,
``ComputeError`` and ``ApiError``. So ``except KvdbError`` still means "storage failed", while
``api/`` maps every package's errors to HTTP with one table walked along the class hierarchy,
``except StructuredError`` catches any of them, and the shape is written once, here, in the
package every other one may import (the layering in DESIGN 1).

``lmdb.Error`` never escapes this package: it is translated here, ``from`` the original.

    StructuredError                code, message, fields                    (error)
    └── KvdbError                  root of the storage layer's errors       (kvdb_error)
        ├── ValidationError        bad input, nothing was written           (invalid_request)
        │   ├── InvalidKey         empty, too long, not UTF-8               (invalid_key)
        │   ├── ReservedKey        user key starting with "_"              (reserved_key)
        │   ├── InvalidContentType not an RFC 9110 media type, non-ASCII,
        │   │                      over 255 bytes                           (invalid_content_type)
        │   ├── ValueTooLarge      value over a limit; size, limit, setting (value_too_large)
        │   └── BatchTooLarge      batch over a limit; size, limit, setting (batch_too_large)
        ├── PreconditionFailed     If-Match / If-None-Match did not hold;
        │                          key, current_version                     (precondition_failed)
        ├── Compacted              asked for events older than the log;
        │                          since, oldest_seq                        (compacted)
        ├── ReplicationError       a replication batch cannot be applied;
        │   │                      where the sender stands                  (replication_error)
        │   ├── SequenceGap        batch starts past the inbound checkpoint (sequence_gap)
        │   ├── EpochMismatch      a store was wiped or restored            (epoch_mismatch)
        │   └── ClockSkew          versions too far ahead of the clock      (clock_skew)
        ├── StorageFull            disk or map_size limit reached           (storage_full)
        ├── DataDirLocked          another process owns the data dir        (data_dir_locked)
        ├── StoreClosed            the store is closed or closing           (store_closed)
        └── StorageError           any other storage failure                (storage_error)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .versions import Version

__all__ = [
    "BatchTooLarge",
    "ClockSkew",
    "Compacted",
    "DataDirLocked",
    "EpochMismatch",
    "InvalidContentType",
    "InvalidKey",
    "KvdbError",
    "PreconditionFailed",
    "ReplicationError",
    "ReservedKey",
    "SequenceGap",
    "StorageError",
    "StorageFull",
    "StoreClosed",
    "StructuredError",
    "ValidationError",
    "ValueTooLarge",
]


class StructuredError(Exception):
    """An error with a stable ``code``, a ``message`` (what and how to fix) and JSON-ready
    ``fields``. The base of every kvdb package's root error; raise a package's own errors."""

    code = "error"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields: dict[str, Any] = fields


class KvdbError(StructuredError):
    """Root of the storage layer's errors."""

    code = "kvdb_error"


class ValidationError(KvdbError):
    code = "invalid_request"


class InvalidKey(ValidationError):
    code = "invalid_key"


class ReservedKey(ValidationError):
    code = "reserved_key"


class InvalidContentType(ValidationError):
    code = "invalid_content_type"


class _TooLarge(ValidationError):
    """Something over a configured limit: ``size`` against ``limit``, which ``setting`` (the
    name in the configuration file, ``node.limits.max_value_size``) raises."""

    def __init__(self, message: str, *, size: int, limit: int, setting: str) -> None:
        super().__init__(message, size=size, limit=limit, setting=setting)
        self.size = size
        self.limit = limit
        self.setting = setting


class ValueTooLarge(_TooLarge):
    code = "value_too_large"


class BatchTooLarge(_TooLarge):
    code = "batch_too_large"


class PreconditionFailed(KvdbError):
    """A conditional write found a different version than the one it required
    (``current_version`` None: the key is absent)."""

    code = "precondition_failed"

    def __init__(self, message: str, *, key: str, current_version: Version | None) -> None:
        version = None if current_version is None else str(current_version)
        super().__init__(message, key=key, current_version=version)
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
            f"since={oldest_seq - 1}",
            oldest_seq=oldest_seq,
            since=since,
        )
        self.since = since
        self.oldest_seq = oldest_seq


class ReplicationError(KvdbError):
    """A replication batch that cannot be applied; nothing of it was written. ``fields``
    says where the sender stands."""

    code = "replication_error"


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
