"""Errors of replication. The root derives from ``kvdb.StructuredError``, the shape every
package's errors share (``code``, ``message``, ``fields``; see ``kvdb/errors.py``).

    SyncError                    root of replication's errors               (sync_error)

The tree grows with the replication issue (targets, conflicts, resync); ``api/`` gives each new
error its HTTP status in ``api/server/errors.py``'s one table.
"""

from __future__ import annotations

from kvdb import StructuredError

__all__ = ["SyncError"]


class SyncError(StructuredError):
    """Root of replication's errors."""

    code = "sync_error"
