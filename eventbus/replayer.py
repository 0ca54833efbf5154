"""``EventReplayer``: deliver a stretch of the change log again, into one handler or route.

A replay selects events by seq range (``from_seq``..``to_seq``, both inclusive) or by commit
time (``from_ts`` inclusive .. ``to_ts`` exclusive, ms since the epoch), then by type and key
pattern. Into a handler, the selected events its routes send it go to it, as they would live
(every route that names it, priorities and ``final`` included); ``ignore_routes`` sends it every
selected event instead. Into a route, the selected events that route matches go to each of its
handlers (other routes and ``final`` play no part). Deliveries use the handler's batching,
retries and dead letters, one handler call at a time alongside its live deliveries.

A replay handles at most ``limit`` selected events; when it stops early, ``next_seq`` is the
``from_seq`` that continues it. ``dry_run`` delivers nothing and calls no handler code: it
returns the events that would be delivered and where. Commit time is non-decreasing in seq
(it comes from the hybrid logical clock), so a time range is found by binary search.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from changestream import ChangeStreamError, EventFilter, parse_event_types
from kvdb import ChangeEvent, Compacted, EventType, Store

from .errors import InvalidReplay, UnknownHandler
from .routes import EventRoute, Router
from .runner import HandlerRunner

__all__ = ["MAX_REPLAY_LIMIT", "EventReplayer", "ReplayRequest", "ReplayResult"]

READ_CHUNK = 1000
MAX_REPLAY_LIMIT = 1_000_000  # events one replay may deliver
DRY_RUN_SAMPLE = 1000  # events listed in a dry run's answer


@dataclass(frozen=True)
class ReplayRequest:
    handler: str | None = None
    route: str | None = None
    from_seq: int | None = None
    to_seq: int | None = None
    from_ts: int | None = None
    to_ts: int | None = None
    event_types: frozenset[EventType] = field(default_factory=frozenset)
    key_patterns: tuple[str, ...] = ()
    dry_run: bool = False
    limit: int = 10_000
    ignore_routes: bool = False  # into a handler: every selected event, whatever its routes

    def __post_init__(self) -> None:
        if (self.handler is None) == (self.route is None):
            raise InvalidReplay("a replay goes into exactly one target: give handler or route")
        by_seq = self.from_seq is not None or self.to_seq is not None
        by_ts = self.from_ts is not None or self.to_ts is not None
        if by_seq and by_ts:
            raise InvalidReplay("give a seq range (from_seq, to_seq) or a time range, not both")
        if not (by_seq or by_ts):
            raise InvalidReplay(
                "give a range: from_seq/to_seq (seqs, inclusive) or from_ts/to_ts (ms since the "
                "epoch, to_ts exclusive)"
            )
        for name in ("from_seq", "to_seq", "from_ts", "to_ts"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidReplay(f"{name} must be an integer, got {value!r}")
        if self.from_seq is not None and self.from_seq < 1:
            raise InvalidReplay(f"from_seq must be >= 1 (seqs start at 1), got {self.from_seq}")
        low, high = (self.from_seq, self.to_seq) if by_seq else (self.from_ts, self.to_ts)
        if low is not None and high is not None and high < low:
            raise InvalidReplay(f"the range ends ({high}) before it starts ({low})")
        if isinstance(self.limit, bool) or not (
            isinstance(self.limit, int) and 1 <= self.limit <= MAX_REPLAY_LIMIT
        ):
            raise InvalidReplay(f"limit must be within 1..{MAX_REPLAY_LIMIT}, got {self.limit!r}")
        if isinstance(self.key_patterns, str):
            raise InvalidReplay("key_patterns must be a list of patterns, not one string")
        if not isinstance(self.ignore_routes, bool):
            raise InvalidReplay(f"ignore_routes must be true or false, got {self.ignore_routes!r}")
        if self.ignore_routes and self.route is not None:
            raise InvalidReplay("ignore_routes is for a replay into a handler, not a route")
        try:
            object.__setattr__(self, "event_types", parse_event_types(self.event_types))
            object.__setattr__(self, "key_patterns", tuple(self.key_patterns))
            EventFilter(self.event_types, self.key_patterns)
        except ChangeStreamError as exc:
            raise InvalidReplay(exc.message) from exc


@dataclass
class ReplayResult:
    dry_run: bool
    from_seq: int  # the first seq examined
    through_seq: int  # the last seq examined
    next_seq: int | None  # from_seq to continue with, if the limit stopped the replay
    scanned: int = 0
    selected: int = 0
    delivered: dict[str, int] = field(default_factory=dict)  # handler -> events
    dead_lettered: dict[str, int] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)  # dry run: a sample

    def to_dict(self) -> dict[str, Any]:
        """JSON form; a dry run says ``would_deliver`` (and lists ``events``) where a real
        replay says ``delivered`` and ``dead_lettered``."""
        doc: dict[str, Any] = {
            "dry_run": self.dry_run,
            "from_seq": self.from_seq,
            "through_seq": self.through_seq,
            "next_seq": self.next_seq,
            "scanned": self.scanned,
            "selected": self.selected,
        }
        if self.dry_run:
            return {**doc, "would_deliver": self.delivered, "events": self.events}
        return {**doc, "delivered": self.delivered, "dead_lettered": self.dead_lettered}


class EventReplayer:
    def __init__(
        self,
        store: Store,
        runners: Callable[[], Mapping[str, HandlerRunner]],
        route: Callable[[str], EventRoute],
        router: Router,
    ) -> None:
        self._store = store
        self._runners = runners
        self._route = route
        self._router = router  # its current table decides what a handler's routes send it

    async def replay(self, request: ReplayRequest) -> ReplayResult:
        targets, route_filter = self._targets(request)
        first, last = self._seq_range(request)
        selector = EventFilter(request.event_types, request.key_patterns)
        result = ReplayResult(request.dry_run, first, first - 1, None)
        since = first - 1
        while since < last and result.next_seq is None:
            events = self._store.read_changes(since, min(READ_CHUNK, last - since))
            if not events:
                break
            chosen: list[ChangeEvent] = []
            for event in events:
                if event.seq > last:
                    break
                if len(chosen) + result.selected == request.limit:
                    result.next_seq = event.seq
                    break
                result.scanned += 1
                result.through_seq = event.seq
                if selector.matches(event) and (route_filter is None or route_filter(event)):
                    chosen.append(event)
            since = events[-1].seq
            result.selected += len(chosen)
            await self._deliver(chosen, targets, request.dry_run, result)
        return result

    def _targets(
        self, request: ReplayRequest
    ) -> tuple[list[HandlerRunner], Callable[[ChangeEvent], bool] | None]:
        runners = self._runners()
        if request.handler is not None:
            runner = self._runner(runners, request.handler)
            if request.ignore_routes:
                return [runner], None
            table, name = self._router.table, request.handler
            if name not in table.handler_names:
                raise InvalidReplay(
                    f"no route sends events to handler {name!r}, so a replay through its "
                    "routes would deliver nothing: pass ignore_routes: true to replay every "
                    "selected event into it"
                )
            return [runner], lambda event: name in table.targets(event)
        assert request.route is not None
        route = self._route(request.route)
        route_filter = EventFilter(route.event_types, route.key_patterns, route.origins)
        return [self._runner(runners, n) for n in route.handler_names], route_filter.matches

    @staticmethod
    def _runner(runners: Mapping[str, HandlerRunner], name: str) -> HandlerRunner:
        runner = runners.get(name)
        if runner is None:
            raise UnknownHandler(name)
        return runner

    def _seq_range(self, request: ReplayRequest) -> tuple[int, int]:
        """``(first, last)`` seqs to examine, both inclusive."""
        head = self._store.last_seq
        oldest = self._store.oldest_seq()
        if request.from_ts is None and request.to_ts is None:
            first = request.from_seq or oldest
            last = min(head, request.to_seq if request.to_seq is not None else head)
            if first < oldest and first <= last:
                raise Compacted(first - 1, oldest)
            return first, last
        first = oldest if request.from_ts is None else self._first_at(request.from_ts, oldest)
        if request.from_ts is not None and first == oldest and oldest > 1:
            oldest_event = self._store.read_changes(oldest - 1, 1)
            # The compacted events are no later than the oldest kept one: if that one is in the
            # range, some of them may have been too. Never a silent gap.
            if oldest_event and oldest_event[0].ts >= request.from_ts:
                raise Compacted(oldest - 1, oldest)
        last = head if request.to_ts is None else self._first_at(request.to_ts, oldest) - 1
        return first, last

    def _first_at(self, ts: int, oldest: int) -> int:
        """The first seq whose commit time is >= ``ts`` (``last_seq + 1`` if none)."""
        low, high = oldest, self._store.last_seq + 1
        while low < high:
            middle = (low + high) // 2
            events = self._store.read_changes(middle - 1, 1)
            if events and events[0].ts < ts:
                low = middle + 1
            else:
                high = middle
        return low

    async def _deliver(
        self,
        events: list[ChangeEvent],
        targets: list[HandlerRunner],
        dry_run: bool,
        result: ReplayResult,
    ) -> None:
        if not events:
            return
        names = [runner.name for runner in targets]
        if dry_run:
            for event in events:
                if len(result.events) < DRY_RUN_SAMPLE:
                    result.events.append(
                        {"seq": event.seq, "type": event.type.value, "key": event.key,
                         "handlers": names}
                    )  # fmt: skip
            for name in names:
                result.delivered[name] = result.delivered.get(name, 0) + len(events)
            return
        for runner in targets:
            handled, dead = await runner.deliver(events)
            result.delivered[runner.name] = result.delivered.get(runner.name, 0) + handled
            if dead:
                result.dead_lettered[runner.name] = result.dead_lettered.get(runner.name, 0) + dead
