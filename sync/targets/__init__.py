"""External sync targets: where a node's changes go besides other nodes (REPLICATION 7).

- ``JetStreamSyncTarget`` (``kind: jetstream``, nats-py): every change event into a NATS
  JetStream stream, exactly once per message id ``<node>:<epoch>:<seq>``.
- ``PostgresSyncTarget`` (``kind: postgres``, psycopg 3): a table holding each key's newest
  version, one transaction per batch with the checkpoint.
- ``RedisSyncTarget`` (``kind: redis``, redis-py): a hash (or string) per key, one Lua script
  per batch with the checkpoint.

Each is a ``SyncTarget``: a ``TargetChannel`` drives it exactly as it drives another node (its
checkpoint, retries with backoff, resends, snapshots, status). The target keeps its own
checkpoint for this node beside the data, so it answers the handshake like a node does. The
drivers are imported only when a target of their kind is made.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .options import EXTERNAL_KINDS, JetStreamOptions, PostgresOptions, RedisOptions

if TYPE_CHECKING:
    from ..config import SyncConfig, TargetConfig
    from ..target import SyncTarget

__all__ = [
    "EXTERNAL_KINDS",
    "JetStreamOptions",
    "PostgresOptions",
    "RedisOptions",
    "external_target",
]

_CLASSES = {
    "jetstream": ("sync.targets.jetstream", "JetStreamSyncTarget"),
    "postgres": ("sync.targets.postgres", "PostgresSyncTarget"),
    "redis": ("sync.targets.redis", "RedisSyncTarget"),
}


def external_target(config: SyncConfig, target: TargetConfig) -> SyncTarget:
    """The ``SyncTarget`` for an external ``target`` of ``config``."""
    module, name = _CLASSES[target.kind]
    cls = getattr(importlib.import_module(module), name)
    made: SyncTarget = cls(target.id, target.options, timeout_ms=config.request_timeout_ms)
    return made
