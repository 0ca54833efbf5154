"""The ``sync:`` section: replication to other nodes (REPLICATION; one entry per
``sync.SyncConfig``). Every check ``sync`` would make is made here, at load time, on the field
it concerns: a target URL that is not http(s), a target with this node's id, an unknown policy,
a resolver that does not import, two entries replicating to one node::

    node: {id: a}
    sync:
      - name: mesh
        source_patterns: [".*"]          # RE2, whole key (default: every key)
        forward: own                     # own: what this node originated; all: relay
        targets:                         # settings/sync_targets.py: kvdb, jetstream,
          - node_id: b                   # postgres, redis (kind: kvdb is the default)
            endpoints: ["http://10.0.0.2:8080", "http://10.1.0.2:8080"]  # later: failover
            token: ${KVDB_SYNC_TOKEN:-}
          - {kind: postgres, name: mirror, dsn: "postgresql://kvdb@127.0.0.1/app"}
        conflict_policy: lww             # lww | delete_wins | update_wins
        policies: [{key_patterns: ["carts/.*"], policy: delete_wins}]
        resolver: null                   # package.module:function
        max_retry_count: 3
        retry_delay: 1s
        max_retry_delay: 30s
        health_check_interval: 5s
        batch_size: 1000
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator, model_validator

from sync import ConflictPolicy, Forward, PolicyRule, SyncConfig, SyncError
from sync.conflicts import load_resolver
from sync.service import check_overlaps

from .base import Section, defaults_of, empty_is_none
from .sync_targets import TargetSettings
from .units import Duration

__all__ = ["SyncSettings", "check_sync_section"]

_DEFAULT = defaults_of(SyncConfig)


def _sync_error(check: Any) -> Any:
    try:
        return check()
    except SyncError as exc:
        raise ValueError(exc.message) from None


class PolicySettings(Section):
    key_patterns: tuple[str, ...] = Field(min_length=1)
    policy: ConflictPolicy

    def rule(self) -> PolicyRule:
        return _sync_error(lambda: PolicyRule(self.key_patterns, self.policy))  # type: ignore[no-any-return]

    @model_validator(mode="after")
    def _valid(self) -> PolicySettings:
        self.rule()
        return self


class SyncSettings(Section):
    """One entry of ``sync:``; the names are those of ``sync.SyncConfig`` (durations in units)."""

    name: str
    targets: tuple[TargetSettings, ...] = ()
    source_patterns: tuple[str, ...] = ()
    forward: Forward = _DEFAULT["forward"]
    conflict_policy: ConflictPolicy = _DEFAULT["conflict_policy"]
    policies: tuple[PolicySettings, ...] = ()
    resolver: Annotated[str | None, BeforeValidator(empty_is_none)] = None
    max_retry_count: int = Field(_DEFAULT["max_retry_count"], ge=1)
    retry_delay: Duration = Field(_DEFAULT["retry_delay_ms"], ge=1)
    max_retry_delay: Duration = Field(_DEFAULT["max_retry_delay_ms"], ge=1)
    health_check_interval: Duration = Field(_DEFAULT["health_check_interval_ms"], ge=1)
    request_timeout: Duration = Field(_DEFAULT["request_timeout_ms"], ge=1)
    batch_size: int = Field(_DEFAULT["batch_size"], ge=1, le=10_000)

    @field_validator("resolver")
    @classmethod
    def _importable(cls, path: str | None) -> str | None:
        if path is not None:
            _sync_error(lambda: load_resolver(path))
        return path

    @model_validator(mode="after")
    def _valid(self) -> SyncSettings:
        self.sync_config()
        return self

    def sync_config(self) -> SyncConfig:
        def build() -> SyncConfig:
            return SyncConfig(
                self.name,
                targets=tuple(t.target_config() for t in self.targets),
                source_patterns=self.source_patterns,
                forward=self.forward,
                conflict_policy=self.conflict_policy,
                policies=tuple(p.rule() for p in self.policies),
                resolver=self.resolver,
                max_retry_count=self.max_retry_count,
                retry_delay_ms=self.retry_delay,
                max_retry_delay_ms=self.max_retry_delay,
                health_check_interval_ms=self.health_check_interval,
                request_timeout_ms=self.request_timeout,
                batch_size=self.batch_size,
            )

        return _sync_error(build)  # type: ignore[no-any-return]


def check_sync_section(cls: Any, entries: tuple[SyncSettings, ...]) -> tuple[SyncSettings, ...]:
    """A field validator of ``Settings.sync``, across entries: unique names, and one entry per
    target node."""
    names = [entry.name for entry in entries]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"sync names must be unique; repeated: {', '.join(repeated)}")
    _sync_error(lambda: check_overlaps([entry.sync_config() for entry in entries]))
    return entries
