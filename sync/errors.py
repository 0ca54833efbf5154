"""Errors of replication. The root derives from ``kvdb.StructuredError``, the shape every
package's errors share (``code``, ``message``, ``fields``; see ``kvdb/errors.py``).

    SyncError                  root of replication's errors             (sync_error)
    ├── InvalidSyncConfig      a SyncConfig that cannot work            (invalid_sync_config)
    ├── UnknownSyncProcessor   no sync processor by that name           (unknown_sync_processor)
    ├── SyncProcessorExists    create() of a name already taken         (sync_processor_exists)
    ├── InvalidSyncMessage     a handshake or batch that is malformed   (invalid_sync_message)
    └── TargetError            a target did not take a batch; retried   (target_error)
        ├── TargetUnavailable  no answer (refused, timed out, reset, 5xx) (target_unavailable)
        ├── TargetMismatch     the endpoint is another node than configured (target_mismatch)
        ├── TargetRefused      refused until someone acts: clock skew, credentials,
        │                      a bad request                            (target_refused)
        └── ResyncNeeded       the target's position moved (a gap, a new epoch): the
                               sender handshakes again                  (resync_needed)

A batch refused by this node's ``/sync/apply`` raises the storage errors of ``kvdb``
(``SequenceGap``, ``EpochMismatch``, ``ClockSkew``), each with its own code.
"""

from __future__ import annotations

from kvdb import StructuredError

__all__ = [
    "InvalidSyncConfig",
    "InvalidSyncMessage",
    "ResyncNeeded",
    "SyncError",
    "SyncProcessorExists",
    "TargetError",
    "TargetMismatch",
    "TargetRefused",
    "TargetUnavailable",
    "UnknownSyncProcessor",
]


class SyncError(StructuredError):
    """Root of replication's errors."""

    code = "sync_error"


class InvalidSyncConfig(SyncError):
    code = "invalid_sync_config"


class UnknownSyncProcessor(SyncError):
    code = "unknown_sync_processor"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"no sync processor named {name!r}; GET /sync/status lists them", name=name
        )


class SyncProcessorExists(SyncError):
    code = "sync_processor_exists"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"a sync processor named {name!r} already exists; delete it first or pick another name",
            name=name,
        )


class InvalidSyncMessage(SyncError):
    code = "invalid_sync_message"


class TargetError(SyncError):
    code = "target_error"


class TargetUnavailable(TargetError):
    code = "target_unavailable"


class TargetMismatch(TargetError):
    code = "target_mismatch"


class TargetRefused(TargetError):
    code = "target_refused"


class ResyncNeeded(TargetError):
    code = "resync_needed"
