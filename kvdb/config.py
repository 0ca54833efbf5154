"""Typed, frozen configuration of a store. ``api/settings`` builds these from YAML."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from .versions import check_node_id

__all__ = ["SETTINGS", "Durability", "Limits", "RetentionPolicy", "StoreConfig"]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

DEFAULT_HEADROOM = 64 * MiB

# LMDB's compiled-in maximum key size (MDB_MAXKEYSIZE).
LMDB_MAX_KEY_BYTES = 511


class Durability(enum.StrEnum):
    """When a commit is considered durable.

    ``full``: fsync data and meta page on every commit (survives power loss).
    ``meta_async``: fsync data, not the meta page (LMDB's MDB_NOMETASYNC); a system crash or
    power loss may undo the last commit but never corrupts the store.
    ``async``: no fsync per commit (MDB_NOSYNC); the store flushes every ``flush_interval_ms``.
    A system crash or power loss may lose the writes of that interval and, on a file system
    that does not preserve write order, can corrupt the store: for data you can rebuild.
    A process crash (kill -9) loses nothing in any mode: committed pages are in the OS page
    cache.
    """

    FULL = "full"
    META_ASYNC = "meta_async"
    ASYNC = "async"


# Where the configuration file sets each limit: errors name the setting a user can change.
SETTINGS = {
    "max_value_bytes": "node.limits.max_value_size",
    "max_batch_ops": "node.limits.max_batch_ops",
    "max_batch_bytes": "node.limits.max_batch_size",
    "max_clock_skew": "node.max_clock_skew",
}


@dataclass(frozen=True, slots=True)
class Limits:
    max_key_bytes: int = LMDB_MAX_KEY_BYTES
    max_value_bytes: int = 16 * MiB
    max_batch_ops: int = 10_000
    max_batch_bytes: int = 64 * MiB

    def __post_init__(self) -> None:
        if not 1 <= self.max_key_bytes <= LMDB_MAX_KEY_BYTES:
            raise ValueError(f"max_key_bytes must be within 1..{LMDB_MAX_KEY_BYTES}")
        for name in ("max_value_bytes", "max_batch_ops", "max_batch_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long the change log keeps events (and replication its conflict records).

    The soft limits (``max_events``, ``max_age_ms``) never compact past a pinning durable
    checkpoint; the hard cap (``hard_max_events``) does, so a consumer that is gone forever
    cannot fill the disk. ``None`` disables a limit.
    """

    max_events: int | None = 1_000_000
    max_age_ms: int | None = 7 * 24 * 3600 * 1000
    hard_max_events: int | None = 50_000_000
    compaction_interval_ms: int = 10_000
    compaction_chunk: int = 10_000
    # Replication's conflict records (kvdb.replication): the newest max_conflicts are kept,
    # none older than max_conflict_age_ms.
    max_conflicts: int | None = 100_000
    max_conflict_age_ms: int | None = 30 * 24 * 3600 * 1000

    def __post_init__(self) -> None:
        for name in ("max_events", "max_age_ms", "hard_max_events", "max_conflicts",
                     "max_conflict_age_ms"):  # fmt: skip
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"retention.{name} must be >= 0 or null")
        if self.compaction_interval_ms < 1 or self.compaction_chunk < 1:
            raise ValueError("retention.compaction_interval_ms and compaction_chunk must be >= 1")


@dataclass(frozen=True, slots=True)
class StoreConfig:
    data_dir: Path = Path("kvdb-data")
    node_id: str | None = None
    durability: Durability = Durability.FULL
    map_size: int = 1 * GiB
    max_map_size: int | None = None
    flush_interval_ms: int = 1000
    max_group_ops: int = 20_000
    limits: Limits = field(default_factory=Limits)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    tombstone_grace_ms: int = 24 * 3600 * 1000
    # Bytes kept for deletes once the store is nearly full (space.py); None: 64 MiB, or an
    # eighth of max_map_size if that is less.
    space_headroom: int | None = None

    @property
    def headroom(self) -> int:
        if self.space_headroom is not None:
            return self.space_headroom
        if self.max_map_size is not None:
            return min(DEFAULT_HEADROOM, self.max_map_size // 8)
        return DEFAULT_HEADROOM

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "durability", Durability(self.durability))
        if self.map_size < 1 * MiB:
            raise ValueError("map_size must be at least 1 MiB")
        if self.max_map_size is not None and self.max_map_size < self.map_size:
            raise ValueError("max_map_size must be at least map_size")
        if self.node_id is not None:
            check_node_id(self.node_id)
        if self.max_group_ops < 1:
            raise ValueError("max_group_ops must be at least 1")
        if self.space_headroom is not None and self.space_headroom < 0:
            raise ValueError("space_headroom must be >= 0")
