"""The parts of a ``StreamPipeline`` definition: its options, its stateful stages, and the
roots of joined pipelines. Definitions are immutable values; ``runtime`` compiles them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .aggregates import AggregateSet
from .errors import PipelineDefinitionError
from .operators import SinkStep, Transform
from .results import Column
from .source import Source
from .timestamps import to_duration_ms
from .windowing import RowBuilder
from .windows import WindowSpec

if TYPE_CHECKING:
    from .pipeline import StreamPipeline

__all__ = [
    "DEFAULT_RETENTION_MS",
    "AggregateStage",
    "IntervalJoinRoot",
    "JoinSelect",
    "PipelineOptions",
    "Root",
    "Stage",
    "WindowJoinRoot",
    "WindowStage",
    "duration_ms",
]

DEFAULT_RETENTION_MS = 24 * 3600 * 1000
JoinSelect = Callable[[dict[str, Any] | None, dict[str, Any] | None], dict[str, Any] | None]


@dataclass(frozen=True)
class PipelineOptions:
    """``emit``: ``changes`` (an updated row per input record) or ``final`` (a row once its
    window closes). ``allowed_lateness``: how long after a window closed late records may still
    update it. ``retention``: how long (in event time) after a window closed its row stays in
    the table. ``start_from``: where a pipeline with no saved state starts reading the log
    (``earliest``, ``latest`` or a seq). ``version``: change it to make a changed definition
    recompute from scratch instead of resuming the old state."""

    emit: str = "changes"
    allowed_lateness: int = 0
    retention: int = DEFAULT_RETENTION_MS
    start_from: str | int = "earliest"
    version: str | None = None

    def __post_init__(self) -> None:
        if self.emit not in ("changes", "final"):
            raise PipelineDefinitionError(f"emit must be 'changes' or 'final', got {self.emit!r}")
        lateness = duration_ms(self.allowed_lateness, "allowed_lateness")
        object.__setattr__(self, "allowed_lateness", lateness)
        retention = duration_ms(self.retention, "retention")
        object.__setattr__(self, "retention", max(retention, lateness))
        start = self.start_from
        if isinstance(start, bool) or not (
            start in ("earliest", "latest") or (isinstance(start, int) and start >= 1)
        ):
            raise PipelineDefinitionError(
                f"start_from must be 'earliest', 'latest' or a seq >= 1, got {start!r}"
            )

    def describe(self) -> dict[str, Any]:
        return {
            "emit": self.emit,
            "allowed_lateness": self.allowed_lateness,
            "retention": self.retention,
            "version": self.version,
        }


def duration_ms(value: int | timedelta, what: str) -> int:
    """``value`` in whole milliseconds (>= 0), as a definition error if it is not one."""
    try:
        return to_duration_ms(value, what)
    except ValueError as exc:
        raise PipelineDefinitionError(str(exc)) from None


@dataclass(frozen=True)
class WindowStage:
    spec: WindowSpec
    name: str
    kind = "window"

    def describe(self) -> dict[str, Any]:
        return {"kind": "window", "name": self.name, "window": self.spec.describe()}


@dataclass(frozen=True)
class AggregateStage:
    """``row(key, start, end, acc)`` builds a result row; None means the default (key column,
    ``window_start``, ``window_end``, then the aggregates by name)."""

    aggregates: AggregateSet
    name: str
    row: RowBuilder | None = None
    columns: tuple[Column, ...] | None = None
    kind = "aggregate"

    def describe(self) -> dict[str, Any]:
        return {"kind": "aggregate", "name": self.name, "aggregates": self.aggregates.describe()}


@dataclass(frozen=True)
class WindowJoinRoot:
    left: StreamPipeline
    right: StreamPipeline
    how: str
    select: JoinSelect | None
    columns: tuple[Column, ...] | None

    def describe(self) -> dict[str, Any]:
        return {
            "join": "window",
            "how": self.how,
            "left": self.left.describe(named=True),
            "right": self.right.describe(named=True),
        }


@dataclass(frozen=True)
class IntervalJoinRoot:
    left: StreamPipeline
    right: StreamPipeline
    lower: int
    upper: int
    select: Callable[[Any, Any], Any]

    def describe(self) -> dict[str, Any]:
        return {
            "join": "interval",
            "lower": self.lower,
            "upper": self.upper,
            "left": self.left.describe(named=True),
            "right": self.right.describe(named=True),
        }


Stage = Transform | WindowStage | AggregateStage | SinkStep
Root = Source | WindowJoinRoot | IntervalJoinRoot
