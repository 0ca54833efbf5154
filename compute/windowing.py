"""``FixedWindowAggregate``: tumbling and sliding windows per key, aggregated incrementally.

State is ``windows[start][key] -> accumulator``: one dict per window start, so the common case
(consecutive records in the same window) costs one dict lookup per record and no tuple. Window
starts are computed arithmetically; a record belongs to one tumbling window, or to
``ceil(size / slide)`` sliding ones.

Per record (``process``):
1. Compute its window(s). A window with ``end + allowed_lateness <= watermark`` (as of that
   record) is too late: skip it; a record none of whose windows accept it is counted in
   ``late_dropped``.
2. Fold the record into the window's accumulator; with ``emit="changes"`` and listeners, emit
   the updated row.

At the end of each batch (``advance``), with the batch's final watermark:
1. Fire the windows with ``end <= watermark`` (``emit="final"``: their rows are emitted and
   become visible in the table), and re-emit windows a late record updated after they fired.
2. Drop the windows with ``end + retention <= watermark`` from state and table.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from itertools import repeat
from typing import Any

from .aggregates import AggregateSet
from .errors import BadCallbackResult
from .operators import key_order, show
from .records import RecordBatch
from .results import ResultUpdate
from .state import dumps, loads
from .watermark import NO_WATERMARK
from .windows import Sliding, Tumbling

__all__ = ["FixedWindowAggregate", "RowBuilder", "WindowAggregate"]

RowBuilder = Callable[[Any, int, int, Any], dict[str, Any]]


class WindowAggregate:
    """What every window aggregate shares: its settings, the counters its checkpoint keeps
    (``meta``), and how a failing aggregate is reported. Subclasses set up their own state in
    ``_configure``."""

    counters: tuple[str, ...] = ("fired_through", "late_dropped", "windows_fired", "late_updates")

    def __init__(
        self,
        name: str,
        spec: Any,
        aggregates: AggregateSet,
        row: RowBuilder,
        *,
        allowed_lateness: int,
        out_of_orderness: int,
        retention: int,
        final: bool,
    ) -> None:
        self.name = name
        self.aggregates = aggregates
        self.row = row
        self.final = final
        self.retention = retention
        self.fired_through = NO_WATERMARK  # windows with end <= this have fired
        self.late_dropped = 0
        self.windows_fired = 0
        self.late_updates = 0
        self._configure(spec, allowed_lateness, out_of_orderness)

    def _configure(self, spec: Any, allowed_lateness: int, out_of_orderness: int) -> None:
        raise NotImplementedError

    def _failed(self, exc: Exception, record: Any) -> BadCallbackResult:
        if isinstance(exc, BadCallbackResult):
            return BadCallbackResult(f"{exc.problem} (record {show(record)})")
        return BadCallbackResult(
            f"aggregating {self.aggregates.describe()} raised {type(exc).__name__}: {exc} "
            f"(record {show(record)})"
        )

    def meta(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.counters}

    def _restore_counters(self, meta: dict[str, Any]) -> None:
        for name in self.counters:
            setattr(self, name, meta[name])


class FixedWindowAggregate(WindowAggregate):
    def _configure(
        self, spec: Tumbling | Sliding, allowed_lateness: int, out_of_orderness: int
    ) -> None:
        self.spec = spec
        self.size = spec.size
        # too late when start + late_after <= max event time (= watermark + out_of_orderness);
        # closed (a late update) when start + closed_after <= it
        self._late_after = spec.size + allowed_lateness + out_of_orderness
        self._closed_after = spec.size + out_of_orderness
        self.windows: dict[int, dict[Any, Any]] = {}
        self._unfired: list[int] = []  # heap of starts that have not fired
        self._retained: list[int] = []  # heap of every start in ``windows``
        self._refire: dict[tuple[int, Any], None] = {}
        self._opened_late: dict[int, int] = {}  # per window start, in this batch
        self._dirty: set[int] = set()
        self._deleted: set[int] = set()
        self.touched: list[tuple[int, Any, int]] | None = None  # (position, key, start), joins

    # -- per batch ----------------------------------------------------------------------------

    def process(
        self, batch: RecordBatch, marks: list[int], updates: list[ResultUpdate] | None
    ) -> None:
        """Fold ``batch`` in. ``updates`` collects per-record rows (``changes``) when someone
        listens; None otherwise."""
        keys = batch.keys if batch.keys is not None else repeat(None)
        emit = updates is not None and not self.final
        if isinstance(self.spec, Tumbling):
            self._tumbling(batch, keys, marks, updates if emit else None)
        else:
            self._sliding(batch, keys, marks, updates if emit else None)

    def _tumbling(
        self, batch: RecordBatch, keys: Any, marks: list[int], updates: list[ResultUpdate] | None
    ) -> None:
        size, offset, late_after = self.size, self.spec.offset, self._late_after
        closed_after = self._closed_after
        windows, dirty, touched = self.windows, self._dirty, self.touched
        create, add, row = self.aggregates.create, self.aggregates.add, self.row
        refire = self._refire if self.final else None
        fired = self.fired_through
        last_start: int | None = None
        current: dict[Any, Any] = {}
        v = None
        try:
            for t, p, k, v in zip(batch.times, batch.positions, keys, batch.values, strict=False):
                start = t - (t - offset) % size
                mark = marks[p]
                if start + closed_after <= mark:
                    if start + late_after <= mark:
                        self.late_dropped += 1
                        continue
                    self._late_record(start, k)
                if start != last_start:
                    current = windows.get(start)  # type: ignore[assignment]
                    if current is None:
                        current = windows[start] = {}
                        heapq.heappush(self._unfired, start)
                        heapq.heappush(self._retained, start)
                    dirty.add(start)
                    last_start = start
                acc = current.get(k)
                if acc is None:
                    acc = create()
                current[k] = acc = add(acc, v)
                if updates is not None:
                    updates.append(ResultUpdate("upsert", row(k, start, start + size, acc)))
                elif refire is not None and start + size <= fired:
                    refire[(start, k)] = None
                if touched is not None:
                    touched.append((p, k, start))

        except Exception as exc:
            raise self._failed(exc, v) from exc

    def _sliding(
        self, batch: RecordBatch, keys: Any, marks: list[int], updates: list[ResultUpdate] | None
    ) -> None:
        size, late_after = self.size, self._late_after
        slide, offset = self.spec.slide, self.spec.offset  # type: ignore[union-attr]
        windows, dirty, touched = self.windows, self._dirty, self.touched
        create, add, row = self.aggregates.create, self.aggregates.add, self.row
        refire = self._refire if self.final else None
        fired = self.fired_through
        v = None
        try:
            for t, p, k, v in zip(batch.times, batch.positions, keys, batch.values, strict=False):
                mark = marks[p]
                start = (
                    t - (t - offset) % slide
                )  # the latest window holding t; earlier ones end first
                if start + late_after <= mark:
                    self.late_dropped += 1
                    continue
                lowest = t - size
                closed_after = self._closed_after
                while start > lowest and start + late_after > mark:
                    if start + closed_after <= mark:
                        self._late_record(start, k)
                    current = windows.get(start)
                    if current is None:
                        current = windows[start] = {}
                        heapq.heappush(self._unfired, start)
                        heapq.heappush(self._retained, start)
                    dirty.add(start)
                    acc = current.get(k)
                    if acc is None:
                        acc = create()
                    current[k] = acc = add(acc, v)
                    if updates is not None:
                        updates.append(ResultUpdate("upsert", row(k, start, start + size, acc)))
                    elif refire is not None and start + size <= fired:
                        refire[(start, k)] = None
                    if touched is not None:
                        touched.append((p, k, start))
                    start -= slide

        except Exception as exc:
            raise self._failed(exc, v) from exc

    def _late_record(self, start: int, key: Any) -> None:
        """A record for a window already closed (within the allowed lateness). If it opens
        the key's row there, that row fires as a late update, not as a window firing."""
        self.late_updates += 1
        if key not in self.windows.get(start, ()):
            self._opened_late[start] = self._opened_late.get(start, 0) + 1

    def advance(self, watermark: int, updates: list[ResultUpdate] | None) -> None:
        """Fire what the watermark closed, re-emit late updates, expire what retention passed."""
        size, windows = self.size, self.windows
        unfired = self._unfired
        emit = updates is not None and self.final
        while unfired and unfired[0] + size <= watermark:
            start = heapq.heappop(unfired)
            keyed = windows.get(start)
            if keyed is None:
                continue
            self.windows_fired += len(keyed) - self._opened_late.get(start, 0)
            if emit:
                assert updates is not None
                row, end = self.row, start + size
                updates.extend(
                    ResultUpdate("upsert", row(k, start, end, a)) for k, a in keyed.items()
                )
        if watermark > self.fired_through:
            self.fired_through = watermark
        self._opened_late.clear()
        if self._refire:  # windows late records changed after they fired: fire them again
            if emit:
                assert updates is not None
                for start, k in self._refire:
                    acc = windows.get(start, {}).get(k)
                    if acc is not None:
                        updates.append(
                            ResultUpdate("upsert", self.row(k, start, start + size, acc))
                        )
            self._refire.clear()
        self._opened_late.clear()
        retained, keep = self._retained, size + self.retention
        while retained and retained[0] + keep <= watermark:
            start = heapq.heappop(retained)
            windows.pop(start, None)
            self._dirty.discard(start)
            self._deleted.add(start)

    # -- reading ------------------------------------------------------------------------------

    def visible(self, start: int) -> bool:
        return not self.final or start + self.size <= self.fired_through

    def rows(self) -> Iterator[dict[str, Any]]:
        """The table, in order of window start, then key."""
        size, row = self.size, self.row
        for start in sorted(self.windows):
            if self.visible(start):
                end = start + size
                keyed = self.windows[start]
                for key in sorted(keyed, key=key_order):
                    yield row(key, start, end, keyed[key])

    def open_windows(self) -> int:
        return sum(
            len(keyed)
            for start, keyed in self.windows.items()
            if start + self.size > self.fired_through
        )

    # -- checkpoints --------------------------------------------------------------------------

    def changes(self) -> tuple[dict[str, bytes], set[str]]:
        puts = {f"w/{start}": dumps(self.windows[start]) for start in self._dirty}
        deletes = {f"w/{start}" for start in self._deleted}
        self._dirty.clear()
        self._deleted.clear()
        return puts, deletes

    def restore(self, records: dict[str, bytes], meta: dict[str, Any]) -> None:
        self.windows = {int(name[2:]): loads(raw) for name, raw in sorted(records.items())}
        self._restore_counters(meta)
        self._retained = sorted(self.windows)
        self._unfired = [s for s in self._retained if s + self.size > self.fired_through]
        self._dirty.clear()
        self._deleted.clear()
        self._refire.clear()
        self._opened_late.clear()
