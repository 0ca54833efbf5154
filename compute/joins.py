"""Joins of two keyed branches of a pipeline.

``WindowJoin``: the two sides aggregate per key in the same fixed windows; the join's table has
a row per key and window, combined from the two sides' rows (``inner``: both present, ``left``
/ ``right``: that side present, ``full``: either). It keeps no state of its own: its rows are
computed from the sides' windows, and it fires when they close (same windows, same
watermark).

``IntervalJoin``: pairs records ``a`` (left) and ``b`` (right) of the same key with
``a.time + lower <= b.time <= a.time + upper``, as each second record of a pair arrives. The
pair is a record at ``max(a.time, b.time)`` for the steps after the join. Each side's records
are buffered until no on-time record of the other side can match them; a record older than
``watermark - allowed_lateness`` is dropped and counted.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any

from .errors import BadCallbackResult
from .operators import key_order, show
from .records import RecordBatch
from .results import ResultUpdate
from .state import dumps, key_digest, loads
from .watermark import NO_WATERMARK
from .windowing import FixedWindowAggregate

__all__ = ["JOIN_KINDS", "IntervalJoin", "WindowJoin"]

JOIN_KINDS = ("inner", "left", "right", "full")
Combine = Callable[[Any, int, int, "dict[str, Any] | None", "dict[str, Any] | None"], Any]
_MISSING = object()


class WindowJoin:
    def __init__(
        self,
        name: str,
        left: FixedWindowAggregate,
        right: FixedWindowAggregate,
        how: str,
        combine: Combine,
        *,
        final: bool,
    ) -> None:
        self.name = name
        self.left, self.right = left, right
        self.size = left.size
        self.how = how
        self.combine = combine
        self.final = final
        left.touched, right.touched = [], []
        self.fired_through = NO_WATERMARK
        self._refire: dict[tuple[int, Any], None] = {}
        self._unfired: list[int] = []  # heap of window starts the join has not fired
        self._queued: set[int] = set()

    @property
    def late_dropped(self) -> int:
        return self.left.late_dropped + self.right.late_dropped

    @property
    def late_updates(self) -> int:
        return self.left.late_updates + self.right.late_updates

    @property
    def windows_fired(self) -> int:
        """The sides' (key, window) firings."""
        return self.left.windows_fired + self.right.windows_fired

    def joined(self, key: Any, start: int) -> dict[str, Any] | None:
        """The joined row of ``key`` in the window at ``start``, or None if ``how`` excludes it."""
        end = start + self.size
        left = self.left.windows.get(start, {}).get(key, _MISSING)
        right = self.right.windows.get(start, {}).get(key, _MISSING)
        how = self.how
        if (left is _MISSING and how in ("inner", "left")) or (
            right is _MISSING and how in ("inner", "right")
        ):
            return None
        if left is _MISSING and right is _MISSING:
            return None
        left_row = None if left is _MISSING else self.left.row(key, start, end, left)
        right_row = None if right is _MISSING else self.right.row(key, start, end, right)
        try:
            row = self.combine(key, start, end, left_row, right_row)
        except BadCallbackResult:
            raise
        except Exception as exc:
            raise BadCallbackResult(
                f"the join's select raised {type(exc).__name__}: {exc} (left {show(left_row)}, "
                f"right {show(right_row)})"
            ) from exc
        if type(row) is not dict:
            raise BadCallbackResult(
                f"the join's select returned {show(row)} ({type(row).__name__}); it must return "
                "a dict of column values"
            )
        return row

    def process(self, updates: list[ResultUpdate] | None) -> None:
        """Rows for the (key, window) pairs the sides touched, in seq order."""
        touched = self.left.touched + self.right.touched  # type: ignore[operator]
        self.left.touched, self.right.touched = [], []
        if len(touched) > 1:
            touched.sort(key=itemgetter(0))
        emit = updates is not None and not self.final
        fired, size = self.fired_through, self.size
        for _, key, start in touched:
            if start not in self._queued and start + size > fired:
                self._queued.add(start)
                heapq.heappush(self._unfired, start)
            if emit:
                row = self.joined(key, start)
                if row is not None:
                    updates.append(ResultUpdate("upsert", row))  # type: ignore[union-attr]
            elif self.final and start + size <= fired:
                self._refire[(start, key)] = None

    def _starts(self) -> list[int]:
        return sorted(set(self.left.windows) | set(self.right.windows))

    def advance(self, watermark: int, updates: list[ResultUpdate] | None) -> None:
        emit = updates is not None and self.final
        unfired = self._unfired
        while unfired and unfired[0] + self.size <= watermark:
            start = heapq.heappop(unfired)
            self._queued.discard(start)
            if not emit:
                continue
            for key in self._keys(start):
                row = self.joined(key, start)
                if row is not None:
                    updates.append(ResultUpdate("upsert", row))  # type: ignore[union-attr]
        if watermark > self.fired_through:
            self.fired_through = watermark
        if self._refire:
            for start, key in self._refire:
                row = self.joined(key, start)
                if row is not None and emit:
                    updates.append(ResultUpdate("upsert", row))  # type: ignore[union-attr]
            self._refire.clear()

    def _keys(self, start: int) -> list[Any]:
        keys = dict.fromkeys(self.left.windows.get(start, ()))
        keys.update(dict.fromkeys(self.right.windows.get(start, ())))
        return sorted(keys, key=key_order)

    def rows(self) -> Iterator[dict[str, Any]]:
        for start in self._starts():
            if self.final and start + self.size > self.fired_through:
                continue
            for key in self._keys(start):
                row = self.joined(key, start)
                if row is not None:
                    yield row

    def open_windows(self) -> int:
        return self.left.open_windows() + self.right.open_windows()

    def changes(self) -> tuple[dict[str, bytes], set[str]]:
        return {}, set()

    def meta(self) -> dict[str, Any]:
        return {"fired_through": self.fired_through}

    def restore(self, records: dict[str, bytes], meta: dict[str, Any]) -> None:
        """After the sides restored theirs (the join reads their windows)."""
        self.fired_through = meta["fired_through"]
        self._refire.clear()
        self._queued = {s for s in self._starts() if s + self.size > self.fired_through}
        self._unfired = sorted(self._queued)


class IntervalJoin:
    def __init__(
        self,
        name: str,
        lower: int,
        upper: int,
        select: Callable[[Any, Any], Any],
        *,
        allowed_lateness: int,
        out_of_orderness: int,
    ) -> None:
        self.name = name
        self.lower, self.upper = lower, upper
        self.select = select
        self.allowed_lateness = allowed_lateness
        self._late_slack = allowed_lateness + out_of_orderness  # late: t + slack < max time
        self.buffers: dict[Any, tuple[list[tuple[int, Any]], list[tuple[int, Any]]]] = {}
        self._dirty: set[Any] = set()
        self._next_cleanup: int | None = None
        self.late_dropped = 0
        self.pairs = 0

    def process(self, left: RecordBatch, right: RecordBatch, marks: list[int]) -> RecordBatch:
        out = RecordBatch.empty(keyed=True)
        merged = sorted(
            [(p, 0, i) for i, p in enumerate(left.positions)]
            + [(p, 1, i) for i, p in enumerate(right.positions)]
        )
        sides = (left, right)
        lower, upper = self.lower, self.upper
        for p, side, i in merged:
            batch = sides[side]
            t, key, value = batch.times[i], batch.keys[i], batch.values[i]  # type: ignore[index]
            if t + self._late_slack < marks[p]:
                self.late_dropped += 1
                continue
            buffers = self.buffers.get(key)
            if buffers is None:
                buffers = self.buffers[key] = ([], [])
            buffers[side].append((t, value))
            self._dirty.add(key)
            expiry = t + upper if side == 0 else t - lower
            if self._next_cleanup is None or expiry < self._next_cleanup:
                self._next_cleanup = expiry
            if side == 0:
                matches = [(tb, vb) for tb, vb in buffers[1] if t + lower <= tb <= t + upper]
                pairs = [(value, vb, max(t, tb)) for tb, vb in matches]
            else:
                matches = [(ta, va) for ta, va in buffers[0] if ta + lower <= t <= ta + upper]
                pairs = [(va, value, max(ta, t)) for ta, va in matches]
            for a, b, pair_time in pairs:
                out.times.append(pair_time)
                out.positions.append(p)
                out.keys.append(key)  # type: ignore[union-attr]
                out.values.append(self._select(a, b))
        self.pairs += len(out)
        return out

    def _select(self, a: Any, b: Any) -> Any:
        try:
            joined = self.select(a, b)
        except Exception as exc:
            raise BadCallbackResult(
                f"the join's select raised {type(exc).__name__}: {exc} (left {show(a)}, "
                f"right {show(b)})"
            ) from exc
        if joined is None:
            raise BadCallbackResult(
                f"the join's select returned None for left {show(a)} and right {show(b)}; "
                "return the joined record"
            )
        return joined

    def advance(self, watermark: int, updates: list[ResultUpdate] | None) -> None:
        """Forget records no on-time record of the other side can match any more."""
        horizon = watermark - self.allowed_lateness
        if self._next_cleanup is None or self._next_cleanup >= horizon:
            return
        lower, upper = self.lower, self.upper
        next_cleanup: int | None = None
        for key in list(self.buffers):
            lefts, rights = self.buffers[key]
            kept_left = [(t, v) for t, v in lefts if t + upper >= horizon]
            kept_right = [(t, v) for t, v in rights if t - lower >= horizon]
            if len(kept_left) != len(lefts) or len(kept_right) != len(rights):
                self._dirty.add(key)
            if not kept_left and not kept_right:
                del self.buffers[key]
                continue
            self.buffers[key] = (kept_left, kept_right)
            for expiry in [t + upper for t, _ in kept_left] + [t - lower for t, _ in kept_right]:
                if next_cleanup is None or expiry < next_cleanup:
                    next_cleanup = expiry
        self._next_cleanup = next_cleanup

    def buffered(self) -> int:
        return sum(len(a) + len(b) for a, b in self.buffers.values())

    def changes(self) -> tuple[dict[str, bytes], set[str]]:
        puts: dict[str, bytes] = {}
        deletes: set[str] = set()
        for key in self._dirty:
            name = f"j/{key_digest(key)}"
            if key in self.buffers:
                puts[name] = dumps((key, self.buffers[key]))
            else:
                deletes.add(name)
        self._dirty.clear()
        return puts, deletes

    def meta(self) -> dict[str, Any]:
        return {"late_dropped": self.late_dropped, "pairs": self.pairs}

    def restore(self, records: dict[str, bytes], meta: dict[str, Any]) -> None:
        self.buffers = {}
        for raw in records.values():
            key, buffers = loads(raw)
            self.buffers[key] = buffers
        self.late_dropped = meta["late_dropped"]
        self.pairs = meta["pairs"]
        expiries = [t + self.upper for a, _ in self.buffers.values() for t, _ in a] + [
            t - self.lower for _, b in self.buffers.values() for t, _ in b
        ]
        self._next_cleanup = min(expiries, default=None)
        self._dirty.clear()
