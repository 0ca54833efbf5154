"""``StreamPipeline``: a windowed computation over the change stream, defined fluently.

    clicks = (
        StreamPipeline("clicks_per_page", ["clicks/.*"], event_time="at")
        .filter(lambda click: click["country"] == "NL")
        .key_by("page")
        .window(Tumbling(timedelta(minutes=1)))
        .aggregate(clicks=Count(), spent=Sum("amount"))
    )

Each method returns a new pipeline (definitions are immutable, so a common prefix can feed two
branches of a join). The shape is checked as it is built: records flow through ``filter``,
``map``, ``flat_map`` and ``key_by``; ``window`` must be followed by ``aggregate`` or ``reduce``;
after that only ``sink`` or a window ``join`` may follow. Every step has a name (given, or its
kind numbered), which errors quote.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from .aggregates import Aggregate, AggregateSet, Reduce
from .errors import BadCallbackResult, PipelineDefinitionError
from .joins import JOIN_KINDS
from .operators import FilterStep, FlatMapStep, KeyByStep, MapStep, SinkStep, show
from .results import TIMESTAMP, Column
from .source import Decode, EventTime, Source
from .stages import (
    DEFAULT_RETENTION_MS,
    AggregateStage,
    IntervalJoinRoot,
    JoinSelect,
    PipelineOptions,
    Root,
    Stage,
    WindowJoinRoot,
    WindowStage,
    duration_ms,
)
from .timestamps import to_duration_ms
from .windowing import RowBuilder
from .windows import Session, Sliding, Tumbling, WindowSpec

__all__ = ["StreamPipeline"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")


class StreamPipeline:
    def __init__(
        self,
        name: str,
        key_patterns: Iterable[str] = (),
        *,
        event_types: Iterable[str] = ("INSERT", "UPDATE"),
        decode: Decode = "json",
        event_time: EventTime = None,
        out_of_orderness: int | timedelta = 0,
        allowed_lateness: int | timedelta = 0,
        emit: str = "changes",
        retention: int | timedelta = DEFAULT_RETENTION_MS,
        start_from: str | int = "earliest",
        version: str | None = None,
        origins: Iterable[str] = (),
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise PipelineDefinitionError(
                f"pipeline name {name!r} must be 1-100 letters, digits, '_', '.' or '-', not "
                "starting with '.' or '-'"
            )
        for what, value in (("key_patterns", key_patterns), ("event_types", event_types)):
            if isinstance(value, str):
                raise PipelineDefinitionError(f"{what} must be a list, not one string: [{value!r}]")
        self.name = name
        self.root: Root = Source(
            tuple(key_patterns),
            frozenset(event_types),  # type: ignore[arg-type]
            decode,
            event_time,
            duration_ms(out_of_orderness, "out_of_orderness"),
            tuple(origins),
        )
        self.stages: tuple[Stage, ...] = ()
        self.options = PipelineOptions(emit, allowed_lateness, retention, start_from, version)  # type: ignore[arg-type]

    # -- the fluent API -----------------------------------------------------------------------

    def filter(self, fn: Callable[[Any], bool], *, name: str | None = None) -> StreamPipeline:
        """Keep the records for which ``fn`` returns True."""
        return self._then(FilterStep(fn, self._name(name, "filter")))

    def map(self, fn: Callable[[Any], Any], *, name: str | None = None) -> StreamPipeline:
        """Replace each record with ``fn(record)``."""
        return self._then(MapStep(fn, self._name(name, "map")))

    def flat_map(
        self, fn: Callable[[Any], Iterable[Any]], *, name: str | None = None
    ) -> StreamPipeline:
        """Replace each record with the records of the list ``fn(record)`` returns."""
        return self._then(FlatMapStep(fn, self._name(name, "flat_map")))

    def key_by(
        self,
        key: str | Callable[[Any], Any],
        *,
        name: str | None = None,
        column: str | None = None,
    ) -> StreamPipeline:
        """Group by ``key``: a field of JSON-object records, or a function of the record.
        ``column`` names the key in results (default: the field name, or ``key``)."""
        fn = _field_key(key) if isinstance(key, str) else key
        column = column or (key if isinstance(key, str) else "key")
        return self._then(KeyByStep(fn, self._name(name, "key_by"), column=column))

    group_by = key_by

    def window(self, spec: WindowSpec, *, name: str | None = None) -> StreamPipeline:
        """Assign records to windows (``Tumbling``, ``Sliding`` or ``Session``)."""
        if not isinstance(spec, Tumbling | Sliding | Session):
            raise PipelineDefinitionError(
                f"window() takes Tumbling(...), Sliding(...) or Session(...), got {spec!r}"
            )
        return self._then(WindowStage(spec, self._name(name, "window")))

    def aggregate(
        self,
        aggregates: Mapping[str, Aggregate] | None = None,
        *,
        name: str | None = None,
        **named: Aggregate,
    ) -> StreamPipeline:
        """Aggregate each key's window: ``aggregate(clicks=Count(), spent=Sum("amount"))``."""
        combined = {**(aggregates or {}), **named}
        return self._then(AggregateStage(AggregateSet(combined), self._name(name, "aggregate")))

    def aggregate_rows(
        self,
        aggregates: AggregateSet | Mapping[str, Aggregate],
        *,
        row: RowBuilder,
        columns: Iterable[Column | str],
        name: str | None = None,
    ) -> StreamPipeline:
        """Aggregate with rows built by ``row(key, window_start, window_end, accumulator)``
        (the SQL planner computes its SELECT list this way), declaring their ``columns``."""
        if not isinstance(aggregates, AggregateSet):
            aggregates = AggregateSet(aggregates)
        stage = AggregateStage(aggregates, self._name(name, "aggregate"), row, _columns(columns))
        return self._then(stage)

    def reduce(
        self, fn: Callable[[Any, Any], Any], *, name: str | None = None, column: str = "value"
    ) -> StreamPipeline:
        """Fold each key's window with ``fn(a, b)`` (associative: sessions merge with it too)."""
        stage = AggregateStage(AggregateSet({column: Reduce(fn)}), self._name(name, "reduce"))
        return self._then(stage)

    def sink(self, fn: Callable[[Any], Any], *, name: str | None = None) -> StreamPipeline:
        """Deliver each output to ``fn``: ``ResultUpdate`` rows after an aggregation, else the
        records. Called after each batch, at least once."""
        return self._then(SinkStep(fn, self._name(name, "sink")))

    def join(
        self,
        other: StreamPipeline,
        *,
        how: str = "inner",
        select: JoinSelect | None = None,
        columns: Iterable[Column | str] | None = None,
        name: str | None = None,
    ) -> StreamPipeline:
        """A window join: both pipelines aggregate per key in the same tumbling or sliding
        windows; the result has a row per key and window with both sides' values (``select``
        builds it from the two rows instead, either of which is None in an outer join)."""
        if how not in JOIN_KINDS:
            raise PipelineDefinitionError(
                f"how must be one of {', '.join(JOIN_KINDS)}, got {how!r}"
            )
        for side in (self, other):
            if side._phase() != "aggregated" or not side.stages:
                raise PipelineDefinitionError(
                    f"join: pipeline {side.name!r} must end with window(...).aggregate(...) (no "
                    "sink); for pairs of records use interval_join"
                )
        left_window, right_window = self._window_stage(), other._window_stage()
        if left_window.spec != right_window.spec:
            raise PipelineDefinitionError(
                f"join: the sides have different windows ({left_window.spec} and "
                f"{right_window.spec}); a window join needs the same windows on both sides"
            )
        if isinstance(left_window.spec, Session):
            raise PipelineDefinitionError(
                "join: session windows of two pipelines need not line up; join tumbling or "
                "sliding windows, or use interval_join"
            )
        if self._keyed() != other._keyed():
            raise PipelineDefinitionError("join: key both sides with key_by, or neither")
        if self.name == other.name:
            raise PipelineDefinitionError(
                f"join: both sides are named {self.name!r}; name them apart (their state is kept "
                "under their names)"
            )
        if select is None:
            _check_no_clash(self, other)
        joined = self._derive(
            name or self.name,
            WindowJoinRoot(self, other, how, select, _columns(columns)),
        )
        return joined

    def interval_join(
        self,
        other: StreamPipeline,
        *,
        lower: int | timedelta,
        upper: int | timedelta,
        select: Callable[[Any, Any], Any] = lambda a, b: (a, b),
        name: str | None = None,
    ) -> StreamPipeline:
        """Pair each record ``a`` with the records ``b`` of ``other`` that have the same key
        and ``a.time + lower <= b.time <= a.time + upper``; the pair (``select(a, b)``) is a
        record at ``max(a.time, b.time)`` for the steps that follow."""
        low = _duration_signed(lower, "lower")
        high = _duration_signed(upper, "upper")
        if low > high:
            raise PipelineDefinitionError(f"interval_join: lower ({low}) exceeds upper ({high})")
        for side in (self, other):
            if side._phase() != "records" or not side._keyed():
                raise PipelineDefinitionError(
                    f"interval_join: pipeline {side.name!r} must be keyed records (key_by, "
                    "no window)"
                )
        if self.name == other.name:
            raise PipelineDefinitionError(f"interval_join: both sides are named {self.name!r}")
        if not callable(select):
            raise PipelineDefinitionError("interval_join: select must be a function of (a, b)")
        return self._derive(name or self.name, IntervalJoinRoot(self, other, low, high, select))

    # -- shape --------------------------------------------------------------------------------

    def _derive(self, name: str, root: Root) -> StreamPipeline:
        derived = copy.copy(self)
        derived.name = name
        derived.root = root
        derived.stages = ()
        return derived

    def with_options(self, **options: Any) -> StreamPipeline:
        """A copy with other ``PipelineOptions`` (emit, allowed_lateness, retention, ...)."""
        derived = copy.copy(self)
        derived.options = replace(self.options, **options)
        return derived

    def _then(self, stage: Stage) -> StreamPipeline:
        phase = self._phase()
        kind = stage.kind
        allowed = {
            "records": ("filter", "map", "flat_map", "key_by", "window", "sink"),
            "windowed": ("aggregate",),
            "aggregated": ("sink",),
            "sunk": ("sink",),
        }[phase]
        if kind not in allowed:
            hint = {
                "windowed": "window(...) must be followed by aggregate(...) or reduce(...)",
                "aggregated": "after aggregate(...) only sink(...) or join(...) may follow",
                "sunk": "sink(...) ends a pipeline; only more sinks may follow",
                "records": "aggregate(...) and reduce(...) need a window(...) first",
            }[phase]
            raise PipelineDefinitionError(
                f"pipeline {self.name!r}: cannot add {kind} step {stage.name!r}: {hint}"
            )
        if isinstance(stage, AggregateStage):
            spec = self._window_stage().spec
            if isinstance(spec, Session) and not stage.aggregates.mergeable:
                raise PipelineDefinitionError(
                    f"pipeline {self.name!r}, step {stage.name!r}: session windows merge, so "
                    "every aggregate needs a merge() method"
                )
        derived = copy.copy(self)
        derived.stages = (*self.stages, stage)
        return derived

    def _phase(self) -> str:
        phase = "aggregated" if isinstance(self.root, WindowJoinRoot) else "records"
        for stage in self.stages:
            phase = {"window": "windowed", "aggregate": "aggregated", "sink": "sunk"}.get(
                stage.kind, phase
            )
        return phase

    def _keyed(self) -> bool:
        keyed = isinstance(self.root, IntervalJoinRoot) or (
            isinstance(self.root, WindowJoinRoot) and self.root.left._keyed()
        )
        return keyed or any(isinstance(stage, KeyByStep) for stage in self.stages)

    def _window_stage(self) -> WindowStage:
        for stage in reversed(self.stages):
            if isinstance(stage, WindowStage):
                return stage
        if isinstance(self.root, WindowJoinRoot):
            return self.root.left._window_stage()
        raise PipelineDefinitionError(f"pipeline {self.name!r} has no window")

    def _name(self, given: str | None, kind: str) -> str:
        taken = {stage.name for stage in self.stages}
        if given is not None:
            if not isinstance(given, str) or not given or "/" in given:
                raise PipelineDefinitionError(
                    f"a step name must be a non-empty string without '/', got {given!r}"
                )
            if given in taken:
                raise PipelineDefinitionError(
                    f"pipeline {self.name!r} already has a step named {given!r}"
                )
            return given
        name, n = kind, 1
        while name in taken:
            n += 1
            name = f"{kind}_{n}"
        return name

    def validate(self) -> None:
        """Raise if the pipeline cannot run: it must aggregate or end in a sink."""
        if self._phase() == "windowed":
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} ends with a window; add aggregate(...) or reduce(...)"
            )
        if self._phase() == "records":
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} produces nothing: end it with window(...).aggregate(...)"
                " or sink(...)"
            )

    @property
    def emits_rows(self) -> bool:
        """True if the pipeline aggregates (a results table), False if it outputs records."""
        return isinstance(self.root, WindowJoinRoot) or any(
            isinstance(stage, AggregateStage) for stage in self.stages
        )

    def aggregate_stage(self) -> AggregateStage:
        for stage in reversed(self.stages):
            if isinstance(stage, AggregateStage):
                return stage
        raise PipelineDefinitionError(f"pipeline {self.name!r} does not aggregate")

    def sources(self) -> list[Source]:
        if isinstance(self.root, Source):
            return [self.root]
        return [*self.root.left.sources(), *self.root.right.sources()]

    def describe(self, *, named: bool = False) -> dict[str, Any]:
        root = self.root.describe()
        doc: dict[str, Any] = {"root": root, "stages": [stage.describe() for stage in self.stages]}
        if named:
            doc["name"] = self.name
        else:
            doc["options"] = self.options.describe()
        return doc

    def fingerprint(self) -> str:
        """Identifies the definition's shape (not its callbacks' code: change ``version`` for
        that): saved state is only resumed by a pipeline with the same fingerprint."""
        text = json.dumps(self.describe(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def __repr__(self) -> str:
        steps = " -> ".join(f"{stage.kind}:{stage.name}" for stage in self.stages)
        return f"StreamPipeline({self.name!r}: {steps or 'source'})"


def _field_key(field: str) -> Callable[[Any], Any]:
    def key_of(record: Any) -> Any:
        try:
            return record[field]
        except (KeyError, TypeError, IndexError):
            raise BadCallbackResult(
                f"the record {show(record)} has no field {field!r} to key by"
            ) from None

    key_of.__qualname__ = f"field[{field!r}]"
    return key_of


def _duration_signed(value: int | timedelta, what: str) -> int:
    try:
        return to_duration_ms(value, what, minimum=-(2**62))
    except ValueError as exc:
        raise PipelineDefinitionError(str(exc)) from None


def _columns(columns: Iterable[Column | str] | None) -> tuple[Column, ...] | None:
    if columns is None:
        return None
    return tuple(
        name
        if isinstance(name, Column)
        else Column(name, TIMESTAMP if name in ("window_start", "window_end") else "any")
        for name in columns
    )


def _check_no_clash(left: StreamPipeline, right: StreamPipeline) -> None:
    names = [set(side.aggregate_stage().aggregates.names) for side in (left, right)]
    clash = sorted(names[0] & names[1])
    if clash:
        raise PipelineDefinitionError(
            f"join: both sides produce {', '.join(map(repr, clash))}; rename one side's "
            "aggregates or pass select= to build the joined row"
        )
