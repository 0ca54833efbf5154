"""Which events a stream wants: event types and key patterns (RE2, full match).

User patterns are compiled with RE2, whose matching time is linear in the key length, so no
pattern can stall the server (no catastrophic backtracking); constructs RE2 does not support
(backreferences, lookaround) are rejected with a clear error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import re2

from kvdb import ChangeEvent, EventType

from .errors import InvalidPattern, InvalidStreamConfig

__all__ = ["EventFilter", "compile_pattern", "compile_pattern_set", "parse_event_types"]

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
    if empty) and its key fully matches one of ``key_patterns`` (any key if empty)."""

    __slots__ = ("_key_matches", "_types", "event_types", "key", "key_patterns")

    def __init__(
        self, event_types: Iterable[EventType] = (), key_patterns: Iterable[str] = ()
    ) -> None:
        self.event_types = frozenset(event_types)
        self.key_patterns = tuple(key_patterns)
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
        self.key = (self._types or frozenset(), self.key_patterns)

    @property
    def matches_everything(self) -> bool:
        return self._key_matches is None and self._types is None

    def matches(self, event: ChangeEvent) -> bool:
        if self._types is not None and event.type not in self._types:
            return False
        return self._key_matches is None or self._key_matches(event.key)

    def matches_key(self, key: str) -> bool:
        return self._key_matches is None or self._key_matches(key)

    def select(self, events: Sequence[ChangeEvent]) -> list[ChangeEvent]:
        if self.matches_everything:
            return list(events)
        matches = self.matches
        return [event for event in events if matches(event)]
