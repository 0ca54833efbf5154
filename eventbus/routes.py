"""``EventRoute``: which events go to which handlers; ``RouteTable`` and ``Router`` decide it.

Priority semantics: routes are consulted from the highest ``priority`` down, one priority
level at a time. An event goes to the handlers of *every* matching route (fan-out, as in
EventBridge or SNS), except that a matching route marked ``final`` ends the search: levels
below it are not consulted (Sieve's ``stop``). Routes of one level are never ordered among
themselves, so route names never change where an event goes. A handler named by several
matching routes gets the event once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from changestream import (
    ChangeStreamError,
    compile_pattern,
    compile_pattern_set,
    config_from_dict,
    parse_event_types,
    parse_origins,
)
from changestream.filters import origin_matcher
from kvdb import ChangeEvent, EventType

from .config import check_name
from .errors import InvalidRoute

__all__ = ["EventRoute", "RouteTable", "Router"]

_NO_HANDLERS: frozenset[str] = frozenset()
_DECISION_CACHE = 4096  # (type, matched patterns) combinations remembered per table
_MEMO_GENERATION = 65_536  # routing decisions remembered per seq, per generation


@dataclass(frozen=True)
class EventRoute:
    """Events whose type is one of ``event_types`` (empty: any), whose key fully matches one
    of ``key_patterns`` (RE2; empty: any key) and whose origin is one of ``origins`` (``local``,
    ``remote`` or node ids; empty: any) go to ``handler_names``. A route on ``[local]`` fires
    once across a replicating mesh: on the node where the write was made. See the module
    docstring for ``priority`` and ``final``."""

    name: str
    event_types: frozenset[EventType] = field(default_factory=frozenset)
    key_patterns: tuple[str, ...] = ()
    handler_names: tuple[str, ...] = ()
    priority: int = 0
    final: bool = False
    origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_name("route", self.name, InvalidRoute)
        try:
            object.__setattr__(self, "event_types", parse_event_types(self.event_types))
            if isinstance(self.key_patterns, str):
                raise InvalidRoute("key_patterns must be a list of patterns, not one string")
            object.__setattr__(self, "key_patterns", tuple(self.key_patterns))
            for pattern in self.key_patterns:
                compile_pattern(pattern)
            object.__setattr__(self, "origins", parse_origins(self.origins))
        except ChangeStreamError as exc:
            raise InvalidRoute(f"route {self.name!r}: {exc.message}") from exc
        if isinstance(self.handler_names, str):
            raise InvalidRoute(f"route {self.name!r}: handler_names must be a list of names")
        names = tuple(self.handler_names)
        if not names:
            raise InvalidRoute(f"route {self.name!r} names no handler; give handler_names")
        for name in names:
            check_name("handler", name, InvalidRoute)
        if len(set(names)) != len(names):
            raise InvalidRoute(f"route {self.name!r} names a handler twice: {list(names)}")
        object.__setattr__(self, "handler_names", names)
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise InvalidRoute(f"route {self.name!r}: priority must be an integer")
        if not isinstance(self.final, bool):
            raise InvalidRoute(f"route {self.name!r}: final must be true or false")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "event_types": sorted(t.value for t in self.event_types),
            "key_patterns": list(self.key_patterns),
            "handler_names": list(self.handler_names),
            "priority": self.priority,
            "final": self.final,
            "origins": list(self.origins),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> EventRoute:
        return config_from_dict(cls, doc, InvalidRoute, "route")


class _CompiledRoute:
    __slots__ = ("handlers", "origins", "patterns", "route", "types")

    def __init__(self, route: EventRoute, pattern_ids: dict[str, int]) -> None:
        self.route = route
        all_types = not route.event_types or route.event_types == frozenset(EventType)
        self.types = None if all_types else route.event_types
        self.patterns = (
            frozenset(pattern_ids[p] for p in route.key_patterns) if route.key_patterns else None
        )
        self.handlers = frozenset(route.handler_names)
        self.origins = origin_matcher(route.origins)

    def matches(
        self, event_type: EventType, matched: frozenset[int], event: ChangeEvent | None = None
    ) -> bool:
        if self.types is not None and event_type not in self.types:
            return False
        if self.origins is not None and event is not None and not self.origins(event):
            return False
        return self.patterns is None or not self.patterns.isdisjoint(matched)


class RouteTable:
    """An immutable set of routes compiled for matching.

    Every distinct pattern of every route goes into one RE2 set, so an event's key is scanned
    once whatever the number of routes; the handlers for a given (event type, matched
    patterns) combination are computed once and remembered.
    """

    def __init__(self, routes: Iterable[EventRoute] = ()) -> None:
        self.routes: tuple[EventRoute, ...] = tuple(
            sorted(routes, key=lambda r: (-r.priority, r.name))
        )
        patterns = sorted({p for r in self.routes for p in r.key_patterns})
        pattern_ids = {pattern: index for index, pattern in enumerate(patterns)}
        self._match = compile_pattern_set(patterns)
        levels: dict[int, list[_CompiledRoute]] = {}
        for route in self.routes:
            levels.setdefault(route.priority, []).append(_CompiledRoute(route, pattern_ids))
        self._levels = [levels[p] for p in sorted(levels, reverse=True)]
        self.handler_names = frozenset(n for r in self.routes for n in r.handler_names)
        # Where routes select by origin, the decision depends on it too.
        self._by_origin = any(r.origins for r in self.routes)
        self._decisions: dict[tuple[Any, ...], frozenset[str]] = {}

    def targets(self, event: ChangeEvent) -> frozenset[str]:
        """The names of the handlers ``event`` goes to."""
        matched = tuple(self._match(event.key.encode()))
        origin = (event.origin, event.source is None) if self._by_origin else None
        decision_key = (event.type, matched, origin)
        handlers = self._decisions.get(decision_key)
        if handlers is None:
            if len(self._decisions) >= _DECISION_CACHE:
                self._decisions.clear()
            handlers = self._decide(event.type, frozenset(matched), event)
            self._decisions[decision_key] = handlers
        return handlers

    def matching_routes(self, event: ChangeEvent) -> list[EventRoute]:
        """The routes that match ``event`` and are consulted (for dry runs and inspection)."""
        matched = frozenset(self._match(event.key.encode()))
        found: list[EventRoute] = []
        for level in self._levels:
            hits = [r for r in level if r.matches(event.type, matched, event)]
            found.extend(r.route for r in hits)
            if any(r.route.final for r in hits):
                break
        return found

    def _decide(
        self, event_type: EventType, matched: frozenset[int], event: ChangeEvent
    ) -> frozenset[str]:
        handlers: set[str] = set()
        for level in self._levels:
            final = False
            for compiled in level:
                if compiled.matches(event_type, matched, event):
                    handlers |= compiled.handlers
                    final = final or compiled.route.final
            if final:
                break
        return frozenset(handlers) if handlers else _NO_HANDLERS


class Router:
    """The current ``RouteTable`` plus a memo of its decisions by seq, shared by every handler's
    runner: each event is matched once however many handlers look at it.

    The memo has two generations of at most ``_MEMO_GENERATION`` seqs each; when the young one
    fills up it becomes the old one. Handlers that run close together (the common case) find
    each other's decisions; one far behind simply matches again. Replacing the table clears
    the memo, so a route change applies to every event a handler examines afterwards.
    """

    def __init__(self, table: RouteTable | None = None) -> None:
        self.table = table or RouteTable()
        self._young: dict[int, frozenset[str]] = {}
        self._old: dict[int, frozenset[str]] = {}

    def replace(self, table: RouteTable) -> None:
        self.table = table
        self._young = {}
        self._old = {}

    def select(self, handler: str, events: Sequence[ChangeEvent]) -> list[ChangeEvent]:
        """The events of ``events`` that go to ``handler``, in order."""
        table = self.table
        if handler not in table.handler_names:
            return []
        young, old = self._young, self._old
        young_get, old_get = young.get, old.get
        targets = table.targets
        selected: list[ChangeEvent] = []
        append = selected.append
        for event in events:
            seq = event.seq
            handlers = young_get(seq)
            if handlers is None:
                handlers = old_get(seq)
                if handlers is None:
                    handlers = young[seq] = targets(event)
            if handler in handlers:
                append(event)
        if len(young) > _MEMO_GENERATION:
            self._old, self._young = young, {}
        return selected

    def route_of(self, name: str) -> EventRoute | None:
        return next((r for r in self.table.routes if r.name == name), None)
