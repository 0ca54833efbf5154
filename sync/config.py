"""``SyncConfig``: what one sync processor replicates, to which nodes, and how it resolves
conflicts and retries (the ``sync:`` section of DESIGN 8; ``api/settings`` builds these)."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from changestream import EventFilter, InvalidPattern
from kvdb.versions import check_node_id

from .errors import InvalidSyncConfig
from .targets.options import TargetOptions, options_of

__all__ = ["ConflictPolicy", "Forward", "PolicyRule", "SyncConfig", "TargetConfig"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class ConflictPolicy(enum.StrEnum):
    """How concurrent versions of a key are resolved, the same way on every node.

    ``lww``: the greater ``(hlc, origin)`` wins (last writer wins). ``delete_wins``: a delete
    beats a concurrent update (for carts, sessions: what one side removed stays removed);
    ``update_wins``: an update beats a concurrent delete. Between two updates (or two deletes)
    both fall back to ``lww``.
    """

    LWW = "lww"
    DELETE_WINS = "delete_wins"
    UPDATE_WINS = "update_wins"


class Forward(enum.StrEnum):
    """Which events a node sends: ``own`` only what it originated (a full mesh, where every
    node hears every origin directly), or ``all`` of them, relaying (a chain or a tree), never
    to the event's origin nor back to the node it came from."""

    OWN = "own"
    ALL = "all"


@dataclass(frozen=True)
class PolicyRule:
    """``policy`` for keys that fully match one of ``key_patterns`` (RE2); first rule wins."""

    key_patterns: tuple[str, ...]
    policy: ConflictPolicy

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_patterns", tuple(self.key_patterns))
        if not self.key_patterns:
            raise InvalidSyncConfig("a policy rule needs at least one key pattern")
        _check_patterns(self.key_patterns, "policies.key_patterns")
        object.__setattr__(self, "policy", _policy(self.policy))


@dataclass(frozen=True)
class TargetConfig:
    """Where a sync processor sends changes. ``kind: kvdb`` (the default) is a node to
    replicate to: later endpoints are failover addresses of the same node (its id is checked
    at every handshake); the checkpoint belongs to the node, not the URL. Any other kind is an
    external system (``sync.targets``), identified by ``name`` (its checkpoint's key) and
    configured by ``options``."""

    node_id: str = ""
    endpoints: tuple[str, ...] = ()
    token: str | None = None
    kind: str = "kvdb"
    name: str | None = None
    options: TargetOptions | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoints", tuple(self.endpoints))
        if self.token == "":
            object.__setattr__(self, "token", None)
        if self.kind != "kvdb":
            self._external()
            return
        if self.options is not None or self.name not in (None, self.node_id):
            raise InvalidSyncConfig(
                "a kvdb target is named by its node_id and has endpoints, not name or options"
            )
        try:
            check_node_id(self.node_id)
        except ValueError as exc:
            raise InvalidSyncConfig(str(exc)) from None
        if not self.endpoints:
            raise InvalidSyncConfig(f"target {self.node_id!r} needs at least one endpoint URL")
        for url in self.endpoints:
            check_endpoint(url)

    def _external(self) -> None:
        object.__setattr__(self, "options", options_of(self.kind, self.options))
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise InvalidSyncConfig(
                f"a {self.kind} target needs a name (1-64 letters, digits, '_', '.' or '-'), "
                f"got {self.name!r}"
            )
        if self.node_id or self.endpoints or self.token:
            raise InvalidSyncConfig(
                f"a {self.kind} target has a name and its own options, not node_id, endpoints "
                "or token"
            )

    @property
    def id(self) -> str:
        """What names the target in status and checkpoints: its node id, or its name."""
        return self.node_id if self.kind == "kvdb" else str(self.name)


def check_endpoint(url: str) -> str:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidSyncConfig(
            f"endpoint {url!r} is not an http(s) URL of a kvdb node, such as http://10.0.0.2:8080"
        )
    return url


@dataclass(frozen=True)
class SyncConfig:
    """One sync processor: the keys it replicates (``source_patterns``, RE2, whole key; empty
    or ``.*``: every key; reserved ``_`` keys never travel), its targets, conflict handling
    and the retry knobs (``retry_delay_ms`` doubles per consecutive failure up to
    ``max_retry_delay_ms``, with full jitter; ``max_retry_count`` failures in a row move to
    the target's next endpoint)."""

    name: str
    targets: tuple[TargetConfig, ...] = ()
    source_patterns: tuple[str, ...] = ()
    forward: Forward = Forward.OWN
    conflict_policy: ConflictPolicy = ConflictPolicy.LWW
    policies: tuple[PolicyRule, ...] = ()
    resolver: str | None = None
    max_retry_count: int = 3
    retry_delay_ms: int = 1000
    max_retry_delay_ms: int = 30_000
    health_check_interval_ms: int = 5000
    request_timeout_ms: int = 10_000
    batch_size: int = 1000

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise InvalidSyncConfig(
                f"sync processor name {self.name!r} must be 1-64 letters, digits, '_', '.' or "
                "'-', starting with a letter or digit"
            )
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "source_patterns", tuple(self.source_patterns))
        object.__setattr__(self, "policies", tuple(self.policies))
        _check_patterns(self.source_patterns, "source_patterns")
        try:
            object.__setattr__(self, "forward", Forward(self.forward))
        except ValueError:
            raise InvalidSyncConfig(
                f"forward must be 'own' or 'all', got {self.forward!r}"
            ) from None
        object.__setattr__(self, "conflict_policy", _policy(self.conflict_policy))
        seen: set[str] = set()
        for target in self.targets:
            if target.id in seen:
                raise InvalidSyncConfig(
                    f"target {target.id!r} is listed twice; list a node's addresses as "
                    "endpoints of one target, and give each external target its own name"
                )
            seen.add(target.id)
        for name in ("max_retry_count", "retry_delay_ms", "health_check_interval_ms",
                     "request_timeout_ms", "batch_size"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidSyncConfig(f"{name} must be an integer >= 1, got {value!r}")
        if self.max_retry_delay_ms < self.retry_delay_ms:
            raise InvalidSyncConfig("max_retry_delay must be at least retry_delay")

    @property
    def stream_name(self) -> str:
        """The durable change stream the processor reads (a reserved, system name)."""
        return f"_sync.{self.name}"

    def key_filter(self) -> EventFilter:
        patterns = () if self.source_patterns in ((), (".*",)) else self.source_patterns
        return EventFilter((), patterns)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> SyncConfig:
        doc = dict(doc)
        try:
            doc["targets"] = tuple(TargetConfig(**t) for t in doc.get("targets", ()))
            doc["policies"] = tuple(PolicyRule(**p) for p in doc.get("policies", ()))
            return cls(**doc)
        except TypeError as exc:
            raise InvalidSyncConfig(f"invalid sync config: {exc}") from exc


def _policy(value: object) -> ConflictPolicy:
    try:
        return ConflictPolicy(str(value))
    except ValueError:
        raise InvalidSyncConfig(
            f"unknown conflict policy {value!r}; expected lww, delete_wins or update_wins "
            "(or a resolver: package.module:function)"
        ) from None


def _check_patterns(patterns: tuple[str, ...], where: str) -> None:
    try:
        EventFilter((), patterns)
    except InvalidPattern as exc:
        raise InvalidSyncConfig(f"{where}: {exc}") from None
