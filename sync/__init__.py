"""Replication between nodes (DESIGN 5, REPLICATION): multi-master sync with conflict
resolution, retries, health checks and failover. Depends on ``kvdb`` and ``changestream``.

A node's ``SyncService`` runs ``RealtimeSyncProcessor``s (one per ``SyncConfig``), each
sending the changes it selects to its ``SyncTarget``s (``RemoteDBSyncTarget`` over HTTP,
``LocalSyncTarget`` in process; ``sync.targets``: NATS JetStream, PostgreSQL and Redis), and
receives other nodes' changes through its ``SyncReceiver``. ``BidirectionalSyncManager`` pairs
two nodes.
"""

from __future__ import annotations

from .backoff import Backoff
from .bidirectional import BidirectionalSyncManager
from .channel import TargetChannel, TargetState
from .config import ConflictPolicy, Forward, PolicyRule, SyncConfig, TargetConfig
from .conflicts import ConflictResolver
from .errors import (
    InvalidSyncConfig,
    InvalidSyncMessage,
    ResyncNeeded,
    SyncError,
    SyncProcessorExists,
    TargetError,
    TargetMismatch,
    TargetRefused,
    TargetUnavailable,
    UnknownSyncProcessor,
)
from .local import LocalSyncTarget
from .processor import RealtimeSyncProcessor
from .receiver import DEFAULT_MAX_CLOCK_SKEW_MS, SyncReceiver
from .remote import RemoteDBSyncTarget
from .service import SyncService
from .target import SyncTarget

__all__ = [
    "DEFAULT_MAX_CLOCK_SKEW_MS",
    "Backoff",
    "BidirectionalSyncManager",
    "ConflictPolicy",
    "ConflictResolver",
    "Forward",
    "InvalidSyncConfig",
    "InvalidSyncMessage",
    "LocalSyncTarget",
    "PolicyRule",
    "RealtimeSyncProcessor",
    "RemoteDBSyncTarget",
    "ResyncNeeded",
    "SyncConfig",
    "SyncError",
    "SyncProcessorExists",
    "SyncReceiver",
    "SyncService",
    "SyncTarget",
    "TargetChannel",
    "TargetConfig",
    "TargetError",
    "TargetMismatch",
    "TargetRefused",
    "TargetState",
    "TargetUnavailable",
    "UnknownSyncProcessor",
]
