"""Conflict policies: how two concurrent versions of a key become one, on every node alike.

The storage layer detects concurrency with version vectors and asks a ``Resolver``; this
module builds that resolver from a ``SyncConfig``. Every policy is a function of the unordered
pair of versions (never of which side holds which), so each node that meets the pair picks the
same winner without talking to the others.

A custom resolver, ``package.module:function``, is called as ``function(key, a, b)`` with the
two ``VersionedValue``s in version order and returns the winner (one of them, or its version).
It must be deterministic and must not depend on the order beyond that; if it raises, ``lww``
decides and the conflict record says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from changestream import EventFilter
from changestream.callables import resolve_import_path
from kvdb import Resolution, Version, VersionedValue

from .config import ConflictPolicy, PolicyRule, SyncConfig
from .errors import InvalidSyncConfig

__all__ = ["ConflictResolver", "load_resolver", "pick"]

CustomResolver = Callable[[str, VersionedValue, VersionedValue], Any]


def pick(policy: ConflictPolicy, a: VersionedValue, b: VersionedValue) -> VersionedValue:
    """The winner of ``a`` and ``b`` under ``policy``."""
    if policy is ConflictPolicy.DELETE_WINS and a.deleted != b.deleted:
        return a if a.deleted else b
    if policy is ConflictPolicy.UPDATE_WINS and a.deleted != b.deleted:
        return b if a.deleted else a
    return a if a.version > b.version else b


def load_resolver(path: str) -> CustomResolver:
    """The custom resolver at ``path``; ``InvalidSyncConfig`` if it cannot be imported."""
    try:
        resolver: CustomResolver = resolve_import_path(path)
    except ValueError as exc:
        raise InvalidSyncConfig(f"resolver: {exc}") from None
    return resolver


class ConflictResolver:
    """The resolver of one ``SyncConfig``: the first policy rule whose patterns match the key,
    else the custom resolver if there is one, else ``conflict_policy``."""

    def __init__(self, config: SyncConfig) -> None:
        self._rules: Sequence[tuple[EventFilter, PolicyRule]] = [
            (EventFilter((), rule.key_patterns), rule) for rule in config.policies
        ]
        self._default = config.conflict_policy
        self._custom = None if config.resolver is None else load_resolver(config.resolver)
        self._custom_name = config.resolver

    def policy_for(self, key: str) -> ConflictPolicy | str:
        for key_filter, rule in self._rules:
            if key_filter.matches_key(key):
                return rule.policy
        return self._custom_name if self._custom is not None else self._default  # type: ignore[return-value]

    def __call__(self, key: str, local: VersionedValue, remote: VersionedValue) -> Resolution:
        a, b = sorted((local, remote), key=lambda value: value.version)
        policy = self.policy_for(key)
        if isinstance(policy, ConflictPolicy):
            winner = pick(policy, a, b)
            return Resolution(winner.version == remote.version, policy.value)
        assert self._custom is not None
        chosen = self._custom(key, a, b)
        version = chosen.version if isinstance(chosen, VersionedValue) else chosen
        if not isinstance(version, Version) or version not in (a.version, b.version):
            raise ValueError(
                f"resolver {self._custom_name} returned {chosen!r}; it must return one of the "
                "two versions it was given"
            )
        return Resolution(version == remote.version, f"resolver:{self._custom_name}")
