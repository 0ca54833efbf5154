"""Which events a stream wants: event types, key patterns (RE2, full match) and origins.

User patterns are compiled with RE2, whose matching time is linear in the key length, so no
pattern can stall the server (no catastrophic backtracking); constructs RE2 does not support
(backreferences, lookaround) are rejected with a clear error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import re2

from kvdb import ChangeEvent, EventType
from kvdb.versions import check_node_id

from .errors import InvalidPattern, InvalidStreamConfig

__all__ = [
    "ORIGIN_KINDS",
    "EventFilter",
    "compile_pattern",
    "compile_pattern_set",
    "origin_matcher",
    "parse_event_types",
    "parse_origins",
]

# Besides node ids, an origins filter may name ``local`` (writes made on this node, not
# replicated to it) and ``remote`` (writes that arrived by replication).
ORIGIN_KINDS = ("local", "remote")

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # errors are raised to the caller, not printed to stderr
MAX_PATTERN_LENGTH = 4096


def compile_pattern(pattern: str) -> re2._Regexp:
    if not isinstance(pattern, str) or not pattern:
        raise InvalidPattern(str(pattern), "a pattern must be a non-empty string")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidPattern(pattern[:40] + "...", f"longer than {MAX_PATTERN_LENGTH} characters")
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise InvalidPattern(pattern, reason) from exc


def compile_pattern_set(patterns: Sequence[str]) -> Callable[[bytes], list[int]]:
    """``match(key_bytes)``: the indices of the ``patterns`` that fully match a key, found in one
    scan of the key (an RE2 set) however many patterns there are.

    Each pattern is first compiled alone, so an invalid one is reported by itself
    (``InvalidPattern``). The matcher is the native set's ``Match`` (google-re2's ``Set._set``,
    an internal pinned in pyproject.toml): the public ``Set.Match`` checks the argument's type
    and answers None for no match on every call. Without it we use the public call.
    """
    for pattern in patterns:
        compile_pattern(pattern)
    if not patterns:
        return lambda raw: []
    pattern_set = re2.Set.FullMatchSet(_OPTIONS)
    for pattern in patterns:
        pattern_set.Add(pattern)
    pattern_set.Compile()
    native = getattr(getattr(pattern_set, "_set", None), "Match", None)
    if native is None:
        return lambda raw: pattern_set.Match(raw) or []
    return native  # type: ignore[no-any-return]


def parse_event_types(names: Iterable[str | EventType]) -> frozenset[EventType]:
    types = set()
    for name in names:
        try:
            types.add(EventType(str(name).upper()))
        except ValueError:
            raise InvalidStreamConfig(
                f"unknown event type {name!r}; expected INSERT, UPDATE or DELETE"
            ) from None
    return frozenset(types)


def parse_origins(origins: Iterable[str]) -> tuple[str, ...]:
    """Check an origins filter: ``local``, ``remote`` or node ids (see ``kvdb.versions``)."""
    if isinstance(origins, str):
        raise InvalidStreamConfig("origins must be a list, such as [local], not one string")
    checked = []
    for origin in origins:
        if origin in ORIGIN_KINDS:
            checked.append(origin)
            continue
        try:
            checked.append(check_node_id(origin))
        except ValueError as exc:
            raise InvalidStreamConfig(
                f"origins: {exc}; or write local (this node's own writes) or remote (writes "
                "replicated to it)"
            ) from None
    return tuple(dict.fromkeys(checked))


def origin_matcher(origins: Sequence[str]) -> Callable[[ChangeEvent], bool] | None:
    """``event -> bool`` for an origins filter (None: every origin). ``local`` is a write made
    on this node (it arrived from no other node), so a webhook routed on ``[local]`` fires once
    across a mesh, on the node where the write happened."""
    if not origins:
        return None
    local, remote = "local" in origins, "remote" in origins
    nodes = frozenset(o for o in origins if o not in ORIGIN_KINDS)
    if local and remote:
        return None

    def matches(event: ChangeEvent) -> bool:
        if event.source is None:
            return local or event.origin in nodes
        return remote or event.origin in nodes

    return matches


def _full_matcher(regex: re2._Regexp) -> Callable[[str], bool]:
    """A fast ``key -> bool`` full-match test.

    google-re2's public ``fullmatch`` builds a match object with decoded offsets (about 2.7 us);
    its compiled ``_regexp.Match`` answers the same question in about 0.6 us. That is an
    internal of google-re2, pinned in pyproject.toml; without it we use the public call.
    """
    native = getattr(getattr(regex, "_regexp", None), "Match", None)
    anchor = getattr(getattr(re2, "_Anchor", None), "ANCHOR_BOTH", None)
    if native is None or anchor is None:
        return lambda key: regex.fullmatch(key) is not None

    def matches(key: str) -> bool:
        raw = key.encode()
        return bool(native(anchor, raw, 0, len(raw))[0][0] >= 0)

    return matches


class EventFilter:
    """``matches(event)`` is true when the event's type is one of ``event_types`` (all types
    if empty), its key fully matches one of ``key_patterns`` (any key if empty) and its origin
    is one of ``origins`` (any if empty; see ``origin_matcher``)."""

    __slots__ = (
        "_key_matches",
        "_origin_matches",
        "_types",
        "event_types",
        "key",
        "key_patterns",
        "origins",
    )

    def __init__(
        self,
        event_types: Iterable[EventType] = (),
        key_patterns: Iterable[str] = (),
        origins: Iterable[str] = (),
    ) -> None:
        self.event_types = frozenset(event_types)
        self.key_patterns = tuple(key_patterns)
        self.origins = parse_origins(origins)
        self._origin_matches = origin_matcher(self.origins)
        for pattern in self.key_patterns:
            compile_pattern(pattern)  # report the offending pattern by itself
        self._key_matches = (
            _full_matcher(compile_pattern("|".join(f"(?:{p})" for p in self.key_patterns)))
            if self.key_patterns
            else None
        )
        all_types = not self.event_types or self.event_types == frozenset(EventType)
        self._types = None if all_types else self.event_types
        # Equal for filters that select the same events: fan-out evaluates each key once.
        self.key = (self._types or frozenset(), self.key_patterns, self.origins)

    @property
    def matches_everything(self) -> bool:
        return self._key_matches is None and self._types is None and self._origin_matches is None

    def matches(self, event: ChangeEvent) -> bool:
        if self._types is not None and event.type not in self._types:
            return False
        if self._origin_matches is not None and not self._origin_matches(event):
            return False
        return self._key_matches is None or self._key_matches(event.key)

    def matches_key(self, key: str) -> bool:
        return self._key_matches is None or self._key_matches(key)

    def select(self, events: Sequence[ChangeEvent]) -> list[ChangeEvent]:
        if self.matches_everything:
            return list(events)
        matches = self.matches
        return [event for event in events if matches(event)]
