"""The ``node:`` section: the store's data directory, durability, limits and retention."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field

from kvdb import Durability, Limits, RetentionPolicy, StoreConfig
from kvdb.config import MiB
from sync import DEFAULT_MAX_CLOCK_SKEW_MS

from .base import Section, defaults_of, empty_is_none
from .units import Duration, Size

__all__ = ["LimitSettings", "NodeSettings", "RetentionSettings"]

_LIMITS = defaults_of(Limits)
_RETENTION = defaults_of(RetentionPolicy)
_STORE = defaults_of(StoreConfig)


class LimitSettings(Section):
    max_value_size: Size = Field(_LIMITS["max_value_bytes"], ge=1, lt=2**32 - 1)
    max_batch_ops: int = Field(_LIMITS["max_batch_ops"], ge=1)
    max_batch_size: Size = Field(_LIMITS["max_batch_bytes"], ge=1)


class RetentionSettings(Section):
    max_events: int | None = Field(_RETENTION["max_events"], ge=0)
    max_age: Duration | None = Field(_RETENTION["max_age_ms"], ge=0)
    hard_max_events: int | None = Field(_RETENTION["hard_max_events"], ge=0)
    compaction_interval: Duration = Field(_RETENTION["compaction_interval_ms"], ge=1)
    max_conflicts: int | None = Field(_RETENTION["max_conflicts"], ge=0)
    max_conflict_age: Duration | None = Field(_RETENTION["max_conflict_age_ms"], ge=0)


class NodeSettings(Section):
    id: Annotated[str | None, BeforeValidator(empty_is_none)] = Field(
        None, min_length=1, max_length=64
    )
    data_dir: Path = _STORE["data_dir"]
    durability: Durability = _STORE["durability"]
    map_size: Size = Field(_STORE["map_size"], ge=1 * MiB)
    max_map_size: Annotated[Size | None, BeforeValidator(empty_is_none)] = _STORE["max_map_size"]
    flush_interval: Duration = Field(_STORE["flush_interval_ms"], ge=1)
    tombstone_grace: Duration = Field(_STORE["tombstone_grace_ms"], ge=0)
    max_clock_skew: Duration = Field(DEFAULT_MAX_CLOCK_SKEW_MS, ge=0)  # further ahead: refused
    # kept for deletes once the store is nearly full (null: 64 MiB, or max_map_size / 8)
    space_headroom: Annotated[Size | None, BeforeValidator(empty_is_none)] = None
    limits: LimitSettings = LimitSettings()
    retention: RetentionSettings = RetentionSettings()

    def store_config(self) -> StoreConfig:
        return StoreConfig(
            data_dir=self.data_dir,
            node_id=self.id,
            durability=self.durability,
            map_size=self.map_size,
            max_map_size=self.max_map_size,
            flush_interval_ms=self.flush_interval,
            limits=Limits(
                max_value_bytes=self.limits.max_value_size,
                max_batch_ops=self.limits.max_batch_ops,
                max_batch_bytes=self.limits.max_batch_size,
            ),
            retention=RetentionPolicy(
                max_events=self.retention.max_events,
                max_age_ms=self.retention.max_age,
                hard_max_events=self.retention.hard_max_events,
                compaction_interval_ms=self.retention.compaction_interval,
                max_conflicts=self.retention.max_conflicts,
                max_conflict_age_ms=self.retention.max_conflict_age,
            ),
            tombstone_grace_ms=self.tombstone_grace,
            space_headroom=self.space_headroom,
        )
