"""``EventAggregator``: counts (and sums of numeric JSON fields) per key pattern and event type
over tumbling windows of commit time.

Windows are ``[start, start + window_ms)``, aligned to the epoch. An event counts once in every
one of its aggregation's patterns that its key fully matches. For a sum, the field is read
from the new value (the old one for a DELETE) parsed as JSON; ``a.b`` reaches into objects.
Events whose field is absent or not a number are counted in ``missing`` for that field.

The aggregator reads the bus stream through a consumer of its own. Its windows are written to
LMDB in the same transaction as its checkpoint (``Store.write_system_state``), so after a
restart it resumes with exactly the counts of the events up to that checkpoint: nothing is
counted twice or lost. Each aggregation keeps its last ``keep_windows`` windows. An
aggregation that is new (or whose definition changed) counts from the aggregator's position
on; it does not re-read the past (replay the log for that).

An orphaned aggregation (its file no longer declares it: ``changestream/declare.py``) stops
counting and keeps its windows, readable. Declared again, it counts on from the aggregator's
position: events committed meanwhile are not in its windows, unless no aggregation ran in
between (the aggregator's checkpoint then stayed where it was, holding back retention).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from changestream import (
    ChangeStreamError,
    Clock,
    Consumer,
    Ownership,
    compile_pattern,
    compile_pattern_set,
    parse_event_types,
)
from kvdb import ChangeEvent, EventType, Store

from .config import RetryPolicy, check_name
from .errors import InvalidAggregation, UnknownAggregation

__all__ = [
    "AggregationSpec",
    "EventAggregator",
    "build_aggregator",
    "forget_aggregates",
    "forget_aggregation",
    "spec_key",
    "stored_aggregations",
]

log = logging.getLogger("eventbus.aggregator")

RECORD_PREFIX = "bus/agg/"
CONSUMER = "_aggregates"


@dataclass(frozen=True)
class AggregationSpec:
    name: str
    window_ms: int
    key_patterns: tuple[str, ...] = (".*",)
    event_types: frozenset[EventType] = field(default_factory=frozenset)
    sum_fields: tuple[str, ...] = ()
    keep_windows: int = 60

    def __post_init__(self) -> None:
        check_name("aggregation", self.name, InvalidAggregation)
        where = f"aggregation {self.name!r}"
        for label, value, low in (
            ("window_ms", self.window_ms, 1),
            ("keep_windows", self.keep_windows, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidAggregation(f"{where}: {label} must be an integer >= {low}")
        for label, names in (("key_patterns", self.key_patterns), ("sum_fields", self.sum_fields)):
            if isinstance(names, str):
                raise InvalidAggregation(f"{where}: {label} must be a list, not one string")
        object.__setattr__(self, "key_patterns", tuple(self.key_patterns))
        object.__setattr__(self, "sum_fields", tuple(self.sum_fields))
        if not self.key_patterns:
            raise InvalidAggregation(f"{where}: give key_patterns ('.*' counts every key)")
        try:
            object.__setattr__(self, "event_types", parse_event_types(self.event_types))
            for pattern in self.key_patterns:
                compile_pattern(pattern)
        except ChangeStreamError as exc:
            raise InvalidAggregation(f"{where}: {exc.message}") from exc
        for path in self.sum_fields:
            if not isinstance(path, str) or not path or "" in path.split("."):
                raise InvalidAggregation(
                    f"{where}: sum field {path!r} must be a JSON field name, or a dotted path "
                    "such as 'order.total'"
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "window_ms": self.window_ms,
            "key_patterns": list(self.key_patterns),
            "event_types": sorted(t.value for t in self.event_types),
            "sum_fields": list(self.sum_fields),
            "keep_windows": self.keep_windows,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> AggregationSpec:
        """The inverse of ``to_dict`` (for stored definitions)."""
        try:
            return cls(**doc)
        except TypeError as exc:
            raise InvalidAggregation(f"invalid aggregation definition {doc!r}: {exc}") from exc


def spec_key(name: str) -> str:
    """The record of an aggregation's definition (and ownership); its windows are beside it."""
    return f"{RECORD_PREFIX}{name}/spec"


def _field_value(event: ChangeEvent, path: Sequence[str], parsed: dict[int, Any]) -> Any:
    if event.seq not in parsed:
        raw = event.old_value if event.type is EventType.DELETE else event.new_value
        try:
            parsed[event.seq] = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError:
            parsed[event.seq] = None
    value = parsed[event.seq]
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class _Aggregation:
    """One spec's windows: ``{start: {(pattern index, type): [count, *sums, *missing]}}``."""

    def __init__(self, spec: AggregationSpec) -> None:
        self.spec = spec
        self._match = compile_pattern_set(spec.key_patterns)
        self._types = spec.event_types or None
        self._paths = [path.split(".") for path in spec.sum_fields]
        self.windows: dict[int, dict[tuple[int, str], list[float]]] = {}
        self.dirty: set[int] = set()
        self.expired: set[int] = set()

    def add(self, event: ChangeEvent, parsed: dict[int, Any]) -> bool:
        if self._types is not None and event.type not in self._types:
            return False
        matched = self._match(event.key.encode())
        if not matched:
            return False
        width = self.spec.window_ms
        start = event.ts - event.ts % width
        window = self.windows.get(start)
        if window is None:
            window = self.windows[start] = {}
            self._expire(start)
        paths = self._paths
        values = [_field_value(event, path, parsed) for path in paths] if paths else []
        for index in matched:
            group = window.get((index, event.type.value))
            if group is None:
                group = window[(index, event.type.value)] = [0.0] * (1 + 2 * len(paths))
            group[0] += 1
            for position, value in enumerate(values):
                numeric = isinstance(value, int | float) and not isinstance(value, bool)
                if numeric and math.isfinite(value):
                    group[1 + position] += value
                    continue
                group[1 + len(paths) + position] += 1
        self.dirty.add(start)
        return True

    def _expire(self, newest: int) -> None:
        horizon = newest - (self.spec.keep_windows - 1) * self.spec.window_ms
        for start in [s for s in self.windows if s < horizon]:
            del self.windows[start]
            self.dirty.discard(start)
            self.expired.add(start)

    def rows(self, now_ms: float) -> list[dict[str, Any]]:
        spec = self.spec
        rows = []
        for start in sorted(self.windows):
            groups = []
            for (index, event_type), group in sorted(self.windows[start].items()):
                count = len(spec.sum_fields)
                groups.append(
                    {
                        "key_pattern": spec.key_patterns[index],
                        "type": event_type,
                        "count": int(group[0]),
                        "sums": dict(zip(spec.sum_fields, group[1 : 1 + count], strict=True)),
                        "missing": {
                            name: int(n)
                            for name, n in zip(spec.sum_fields, group[1 + count :], strict=True)
                        },
                    }
                )
            end = start + spec.window_ms
            rows.append({"start": start, "end": end, "closed": now_ms >= end, "groups": groups})
        return rows

    # -- persistence --------------------------------------------------------------------------

    def window_key(self, start: int) -> str:
        return f"{RECORD_PREFIX}{self.spec.name}/w/{start:020d}"

    def encode(self, start: int) -> bytes:
        groups = [[i, t, *g] for (i, t), g in sorted(self.windows[start].items())]
        return orjson.dumps(groups)

    def decode(self, start: int, raw: bytes) -> None:
        self.windows[start] = {
            (int(g[0]), str(g[1])): [float(x) for x in g[2:]] for g in raw_groups(raw)
        }


def build_aggregator(
    store: Store, registered: Sequence[AggregationSpec], clock: Clock
) -> EventAggregator | None:
    """The aggregator of a starting bus: the program's aggregations (``registered``), the
    declared ones that count, and the orphans (kept for reading); None if there is none."""
    counting = list(registered)
    ownership: dict[str, Ownership] = {}
    orphans = []
    for name, (doc, owned) in stored_aggregations(store).items():
        if owned.owner is None:
            continue  # the program's: it counts while the program registers it
        try:
            spec = AggregationSpec.from_dict(doc)
        except InvalidAggregation as exc:
            if not owned.orphaned:
                raise
            log.error("orphaned aggregation %s cannot be read: %s", name, exc.message)
            continue
        if owned.orphaned:
            orphans.append((spec, owned))
        elif any(r.name == name for r in registered):
            raise InvalidAggregation(
                f"the program registers an aggregation named {name!r}, but {owned.owner!r} "
                "declares one of that name; rename one of them"
            )
        else:
            counting.append(spec)
            ownership[name] = owned
    if not counting and not orphans:
        return None
    return EventAggregator(counting, clock, ownership=ownership, orphans=orphans)


def stored_aggregations(store: Store) -> dict[str, tuple[dict[str, Any], Ownership]]:
    """Every stored aggregation definition (JSON) with its ownership, by name."""
    stored: dict[str, tuple[dict[str, Any], Ownership]] = {}
    for key, raw in store.list_system_records(RECORD_PREFIX):
        if key.endswith("/spec"):
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict):
                stored[key[len(RECORD_PREFIX) : -len("/spec")]] = Ownership.split(doc)
    return stored


def _stored_spec(raw: bytes | None) -> dict[str, Any] | None:
    """A stored definition without its ownership fields (None if absent or unreadable)."""
    try:
        doc = None if raw is None else orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return Ownership.split(doc)[0] if isinstance(doc, dict) else None


def raw_groups(raw: bytes) -> list[list[Any]]:
    groups = orjson.loads(raw)
    if not isinstance(groups, list):
        raise ValueError("an aggregate window record must be a JSON list")
    return groups


class EventAggregator:
    """The aggregations of a bus, fed as a handler of its own (consumer ``_aggregates``)."""

    kind = "aggregator"
    batch_size = 1
    flush_interval_ms: float = 0
    retry: RetryPolicy | None = RetryPolicy(max_attempts=1)

    def __init__(
        self,
        specs: Iterable[AggregationSpec],
        clock: Clock,
        *,
        ownership: dict[str, Ownership] | None = None,
        orphans: Iterable[tuple[AggregationSpec, Ownership]] = (),
    ) -> None:
        """``specs`` count; ``ownership`` says who declared which of them (absent: the
        program); ``orphans`` only keep their windows, for reading."""
        self.name = CONSUMER
        self._clock = clock
        self._store: Store | None = None
        self._aggregations: dict[str, _Aggregation] = {}
        self._orphans: dict[str, _Aggregation] = {}
        self.ownership: dict[str, Ownership] = dict(ownership or {})
        for spec in specs:
            if spec.name in self._aggregations:
                raise InvalidAggregation(f"aggregation names must be unique; {spec.name!r} repeats")
            self._aggregations[spec.name] = _Aggregation(spec)
        for spec, owned in orphans:
            if spec.name in self._aggregations:
                raise InvalidAggregation(
                    f"the program registers an aggregation named {spec.name!r}, but "
                    f"{owned.owner!r} declared one of that name; rename one of them"
                )
            self._orphans[spec.name] = _Aggregation(spec)
            self.ownership[spec.name] = owned

    @property
    def specs(self) -> list[AggregationSpec]:
        return [a.spec for a in self._aggregations.values()]

    @property
    def counting(self) -> bool:
        """Whether any aggregation counts (else only orphans are kept, for reading)."""
        return bool(self._aggregations)

    @property
    def orphans(self) -> list[str]:
        return sorted(self._orphans)

    def drop_orphan(self, name: str) -> None:
        del self._orphans[name]
        self.ownership.pop(name, None)

    async def start(self) -> None:
        """Windows are loaded by ``load`` before the consumer attaches; nothing else to open."""

    async def close(self) -> None:
        """Windows are persisted with each checkpoint; nothing else to release."""

    def select(self, events: Sequence[ChangeEvent]) -> list[ChangeEvent]:
        return list(events)

    async def handle(self, events: Sequence[ChangeEvent]) -> None:
        aggregations = list(self._aggregations.values())
        parsed: dict[int, Any] = {}
        for event in events:
            for aggregation in aggregations:
                aggregation.add(event, parsed)

    def results(self, name: str | None = None) -> list[dict[str, Any]]:
        every = {**self._aggregations, **self._orphans}
        if name is not None and name not in every:
            raise UnknownAggregation(name)
        now = self._clock.now_ms()
        return [
            {
                **every[key].spec.to_dict(),
                **self.ownership.get(key, Ownership()).to_dict(),
                "windows": every[key].rows(now),
            }
            for key in every
            if name is None or key == name
        ]

    # -- persistence: windows commit with the checkpoint ---------------------------------------

    async def load(self, store: Store) -> None:
        """Load the persisted windows of unchanged aggregations and of orphans; drop
        everything else."""
        self._store = store
        deletes: list[str] = []
        puts: dict[str, bytes] = {}
        records = store.list_system_records(RECORD_PREFIX)
        by_name: dict[str, list[tuple[str, bytes]]] = {}
        for key, raw in records:
            name = key[len(RECORD_PREFIX) :].split("/", 1)[0]
            by_name.setdefault(name, []).append((key, raw))
        for name, entries in by_name.items():
            aggregation = self._aggregations.get(name) or self._orphans.get(name)
            key_of_spec = spec_key(name)
            stored = dict(entries).get(key_of_spec)
            if aggregation is None or _stored_spec(stored) != aggregation.spec.to_dict():
                deletes.extend(key for key, _ in entries)
                continue
            for key, raw in entries:
                if key != key_of_spec:
                    aggregation.decode(int(key.rsplit("/", 1)[1]), raw)
        for aggregation in self._aggregations.values():
            name = aggregation.spec.name
            fields = self.ownership.get(name, Ownership()).to_fields()
            puts[spec_key(name)] = orjson.dumps({**aggregation.spec.to_dict(), **fields})
        await store.write_system_state(puts, [key for key in deletes if key not in puts])

    async def commit(self, consumer: Consumer, seq: int) -> None:
        """Write the changed windows and the checkpoint ``seq`` in one transaction."""
        assert self._store is not None, "load() the aggregator before it runs"
        puts, deletes = self.snapshot()
        try:
            await self._store.write_system_state(puts, deletes, checkpoint=(consumer.key, seq))
        except BaseException:
            self.unsnapshot(puts, deletes)
            raise
        consumer.checkpoint = max(consumer.checkpoint, seq)

    def snapshot(self) -> tuple[dict[str, bytes], list[str]]:
        """The records changed since the last snapshot: windows to write and to delete."""
        puts: dict[str, bytes] = {}
        deletes: list[str] = []
        for aggregation in self._aggregations.values():
            for start in aggregation.dirty:
                puts[aggregation.window_key(start)] = aggregation.encode(start)
            deletes.extend(aggregation.window_key(start) for start in aggregation.expired)
            aggregation.dirty.clear()
            aggregation.expired.clear()
        return puts, deletes

    def unsnapshot(self, puts: dict[str, bytes], deletes: list[str]) -> None:
        """A snapshot failed to commit: mark its windows dirty again."""
        for aggregation in self._aggregations.values():
            prefix = f"{RECORD_PREFIX}{aggregation.spec.name}/w/"
            for key in [*puts, *deletes]:
                if key.startswith(prefix):
                    start = int(key.rsplit("/", 1)[1])
                    (
                        aggregation.dirty if start in aggregation.windows else aggregation.expired
                    ).add(start)


async def forget_aggregation(store: Store, name: str) -> None:
    """Delete one aggregation's persisted windows and definition."""
    keys = [key for key, _ in store.list_system_records(f"{RECORD_PREFIX}{name}/")]
    if keys:
        await store.write_system_state({}, keys)


async def forget_aggregates(store: Store) -> None:
    """Delete every persisted window and definition (no aggregations are configured now)."""
    keys = [key for key, _ in store.list_system_records(RECORD_PREFIX)]
    if keys:
        await store.write_system_state({}, keys)
