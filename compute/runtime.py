"""``PipelineRuntime``: a pipeline definition compiled into operators, fed batches of events.

Per batch of change events (``process``):
1. Skip events already applied (seq <= ``seq``): a retried batch is never counted twice.
2. Each source decodes its events into records with event times.
3. ``marks[i]``: the largest event time seen before event ``i`` (its watermark plus the
   out-of-orderness), so every decision about a record (late? closes a session?) uses the
   watermark as of that record, whatever the batching.
4. Records run through each branch's steps into its window operator (or out, as records).
5. With the batch's final watermark, stateful operators fire, re-emit and expire windows.

The runtime is synchronous and single-threaded; the processor around it handles checkpoints,
subscribers and sinks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import accumulate
from typing import Any

from kvdb import ChangeEvent

from .errors import BadCallbackResult, StepError
from .joins import IntervalJoin, WindowJoin
from .operators import KeyByStep, SinkStep, Transform
from .pipeline import StreamPipeline
from .records import RecordBatch
from .results import TIMESTAMP, Column, ResultTable, ResultUpdate
from .sessions import SessionWindowAggregate
from .source import Source, SourceReader
from .stages import AggregateStage, IntervalJoinRoot, WindowJoinRoot, WindowStage
from .state import Stateful, dumps, loads
from .watermark import NO_WATERMARK
from .windowing import FixedWindowAggregate, RowBuilder
from .windows import Session

__all__ = ["PipelineRuntime"]

WindowOperator = FixedWindowAggregate | SessionWindowAggregate


class _Branch:
    """Records from an input (a source, or a join of two branches) through stateless steps,
    into a window operator or out of the pipeline."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.source: int | None = None
        self.join: IntervalJoin | WindowJoin | None = None
        self.sides: tuple[_Branch, _Branch] | None = None
        self.transforms: list[Transform] = []
        self.window: WindowOperator | None = None
        self.key_column: str | None = None
        self.columns: tuple[Column, ...] = ()


class PipelineRuntime:
    def __init__(self, pipeline: StreamPipeline) -> None:
        pipeline.validate()
        self.pipeline = pipeline
        self.name = pipeline.name
        self.fingerprint = pipeline.fingerprint()
        sources = pipeline.sources()
        self.out_of_orderness = max(source.out_of_orderness for source in sources)
        self.readers: list[SourceReader] = []
        self.stateful: list[Stateful] = []  # in the order they advance
        self.sinks = [stage for stage in pipeline.stages if isinstance(stage, SinkStep)]
        self.root = self._compile(pipeline, "", terminal=True)
        self.table: WindowOperator | WindowJoin | None = (
            self.root.join if isinstance(self.root.join, WindowJoin) else self.root.window
        )
        self.max_time = NO_WATERMARK
        self.seq = 0
        self.events_seen = 0
        self.events_in = 0
        self.listening = False  # set by the processor: per-record updates are wanted

    # -- compiling ----------------------------------------------------------------------------

    def _compile(self, pipeline: StreamPipeline, label: str, *, terminal: bool) -> _Branch:
        branch = _Branch(label)
        root = pipeline.root
        if isinstance(root, Source):
            branch.source = len(self.readers)
            self.readers.append(SourceReader(root))
        else:
            position = len(self.stateful)
            left = self._compile(root.left, f"{root.left.name}.", terminal=False)
            right = self._compile(root.right, f"{root.right.name}.", terminal=False)
            branch.sides = (left, right)
            branch.key_column = left.key_column
            if isinstance(root, IntervalJoinRoot):
                branch.join = IntervalJoin(
                    f"{label}interval_join", root.lower, root.upper, root.select,
                    allowed_lateness=pipeline.options.allowed_lateness,
                    out_of_orderness=self.out_of_orderness,
                )  # fmt: skip
                self.stateful.append(branch.join)
            else:
                branch.join, branch.columns = self._compile_window_join(
                    pipeline, root, left, right, label
                )
                self.stateful.insert(position, branch.join)  # fires before the sides expire
        window: WindowStage | None = None
        for stage in pipeline.stages:
            if isinstance(stage, Transform):
                branch.transforms.append(stage)
                if isinstance(stage, KeyByStep):
                    branch.key_column = stage.column
            elif isinstance(stage, WindowStage):
                window = stage
            elif isinstance(stage, AggregateStage):
                assert window is not None
                branch.window = self._window_operator(
                    pipeline, branch, window, stage, label, terminal
                )
                self.stateful.append(branch.window)
        return branch

    def _window_operator(
        self,
        pipeline: StreamPipeline,
        branch: _Branch,
        window: WindowStage,
        stage: AggregateStage,
        label: str,
        terminal: bool,
    ) -> WindowOperator:
        options = self.pipeline.options
        row, columns = _default_rows(branch.key_column, stage)
        branch.columns = stage.columns or columns
        kind = SessionWindowAggregate if isinstance(window.spec, Session) else FixedWindowAggregate
        return kind(
            f"{label}{stage.name}",
            window.spec,
            stage.aggregates,
            stage.row or row,
            allowed_lateness=options.allowed_lateness,
            out_of_orderness=self.out_of_orderness,
            retention=options.retention,
            final=terminal and options.emit == "final",
        )

    def _compile_window_join(
        self,
        pipeline: StreamPipeline,
        root: WindowJoinRoot,
        left: _Branch,
        right: _Branch,
        label: str,
    ) -> tuple[WindowJoin, tuple[Column, ...]]:
        assert isinstance(left.window, FixedWindowAggregate)
        assert isinstance(right.window, FixedWindowAggregate)
        if root.select is not None:
            select = root.select

            def combine(key: Any, start: int, end: int, lrow: Any, rrow: Any) -> Any:
                return select(lrow, rrow)

            columns = root.columns or ()
        else:
            names = [c.name for c in left.columns] + [
                c.name for c in right.columns if c.name not in {x.name for x in left.columns}
            ]

            def combine(key: Any, start: int, end: int, lrow: Any, rrow: Any) -> Any:
                row = dict.fromkeys(names)
                row.update(rrow or {})
                row.update(lrow or {})
                return row

            columns = root.columns or tuple(
                {c.name: c for c in (*left.columns, *right.columns)}.values()
            )
        join = WindowJoin(
            f"{label}join", left.window, right.window, root.how, combine,
            final=pipeline.options.emit == "final",
        )  # fmt: skip
        return join, columns

    # -- processing ---------------------------------------------------------------------------

    @property
    def watermark(self) -> int:
        if self.max_time == NO_WATERMARK:
            return NO_WATERMARK
        return self.max_time - self.out_of_orderness

    def process(self, events: Sequence[ChangeEvent]) -> tuple[list[ResultUpdate], list[Any]]:
        """Apply ``events``. Returns the updates for subscribers (only while ``listening``) and
        the outputs for sinks. Raises ``StepError`` if a callback fails."""
        if events and events[0].seq <= self.seq:
            events = [event for event in events if event.seq > self.seq]
        if not events:
            return [], []
        batches = self._read(events)
        marks = self._marks(len(events), batches)  # n + 1: before each event, then after all
        updates: list[ResultUpdate] | None = [] if self.listening else None
        records = self._run(self.root, batches, marks, updates)
        self.max_time = marks.pop()
        watermark = self.watermark
        for op in self.stateful:
            op.advance(watermark, updates if op is self.table else None)  # type: ignore[attr-defined]
        self.seq = events[-1].seq
        self.events_seen += len(events)
        self.events_in += sum(len(batch) for batch in batches)
        if records is None:
            return updates or [], updates or []
        if updates is not None:
            updates = [
                ResultUpdate("record", {"key": k, "time": t, "value": v})
                for t, k, v in zip(
                    records.times,
                    records.keys or [None] * len(records),
                    records.values,
                    strict=True,
                )
            ]
        return updates or [], records.values

    def _read(self, events: Sequence[ChangeEvent]) -> list[RecordBatch]:
        readers = self.readers
        try:
            if len(readers) == 1:
                return [readers[0].read(events, range(len(events)))]
            batches = []
            for reader in readers:
                matches = reader.filter.matches
                positions = [i for i, event in enumerate(events) if matches(event)]
                batches.append(reader.read([events[i] for i in positions], positions))
            return batches
        except BadCallbackResult as exc:
            raise StepError(self.name, "source", exc.problem) from exc

    def _marks(self, n: int, batches: list[RecordBatch]) -> list[int]:
        """Largest event time seen before each event of the batch, then after the last."""
        if len(batches) == 1 and len(batches[0]) == n:
            times = batches[0].times
        else:
            times = [NO_WATERMARK] * n
            for batch in batches:
                for position, t in zip(batch.positions, batch.times, strict=True):
                    if t > times[position]:
                        times[position] = t
        return list(accumulate(times, max, initial=self.max_time))

    def _run(
        self,
        branch: _Branch,
        batches: list[RecordBatch],
        marks: list[int],
        updates: list[ResultUpdate] | None,
    ) -> RecordBatch | None:
        """Run ``branch`` on this batch: its records if it has no window, else None."""
        if isinstance(branch.join, WindowJoin):
            self._window_join(branch, branch.join, batches, marks, updates)
            return None
        batch = self._records(branch, batches, marks)
        if branch.window is None:
            return batch
        self._window(branch, batch, marks, updates if branch is self.root else None)
        return None

    def _records(
        self, branch: _Branch, batches: list[RecordBatch], marks: list[int]
    ) -> RecordBatch:
        """The branch's records after its stateless steps (before its window)."""
        if branch.source is not None:
            batch = batches[branch.source]
        else:
            assert branch.sides is not None and isinstance(branch.join, IntervalJoin)
            left, right = (self._run(side, batches, marks, None) for side in branch.sides)
            assert left is not None and right is not None
            try:
                batch = branch.join.process(left, right, marks)
            except BadCallbackResult as exc:
                raise StepError(self.name, f"{branch.label}join", exc.problem) from exc
        for step in branch.transforms:
            if not batch:
                break
            try:
                batch = step.apply(batch)
            except BadCallbackResult as exc:
                raise StepError(self.name, branch.label + step.name, exc.problem) from exc
        return batch

    def _window(
        self,
        branch: _Branch,
        batch: RecordBatch,
        marks: list[int],
        updates: list[ResultUpdate] | None,
    ) -> None:
        if batch:
            assert branch.window is not None
            try:
                branch.window.process(batch, marks, updates)
            except BadCallbackResult as exc:
                raise StepError(self.name, branch.window.name, exc.problem) from exc

    def _window_join(
        self,
        branch: _Branch,
        join: WindowJoin,
        batches: list[RecordBatch],
        marks: list[int],
        updates: list[ResultUpdate] | None,
    ) -> None:
        """Both sides aggregate their records, then the join updates its rows. A row per
        input record (``changes`` with listeners) must show both sides as of that record, so
        then the sides take their records one at a time, in seq order."""
        assert branch.sides is not None
        left, right = branch.sides
        left_batch = self._records(left, batches, marks)
        right_batch = self._records(right, batches, marks)
        try:
            if updates is None or join.final:
                self._window(left, left_batch, marks, None)
                self._window(right, right_batch, marks, None)
                join.process(updates)
                return
            merged = sorted(
                [(p, 0, i) for i, p in enumerate(left_batch.positions)]
                + [(p, 1, i) for i, p in enumerate(right_batch.positions)]
            )
            for _, side, i in merged:
                batch = (left_batch, right_batch)[side]
                one = RecordBatch(
                    [batch.times[i]],
                    [batch.positions[i]],
                    None if batch.keys is None else [batch.keys[i]],
                    [batch.values[i]],
                )
                self._window(branch.sides[side], one, marks, None)
                join.process(updates)
        except BadCallbackResult as exc:
            raise StepError(self.name, f"{branch.label}join", exc.problem) from exc

    # -- results ------------------------------------------------------------------------------

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.root.columns

    def rows(self) -> Iterator[dict[str, Any]]:
        if self.table is None:
            return iter(())
        return self.table.rows()

    def results(self) -> ResultTable:
        rows = list(self.rows())
        columns = self.columns
        if not columns and rows:  # a join with select= and no declared columns
            names = dict.fromkeys(name for row in rows for name in row)
            columns = tuple(
                Column(n, TIMESTAMP if n in ("window_start", "window_end") else "any")
                for n in names
            )
        return ResultTable(columns, rows)

    def stats(self) -> dict[str, Any]:
        ops: list[Any] = self.stateful
        table = self.table
        return {
            "events_seen": self.events_seen,
            "events_in": self.events_in,
            "invalid": sum(reader.invalid for reader in self.readers),
            "last_invalid": next(
                (r.last_invalid for r in reversed(self.readers) if r.last_invalid), None
            ),
            "late_dropped": sum(op.late_dropped for op in ops if not isinstance(op, WindowJoin)),
            "windows_fired": getattr(table, "windows_fired", 0),
            "late_updates": getattr(table, "late_updates", 0),
            "open_windows": table.open_windows() if table is not None else 0,
            "seq": self.seq,
            "max_event_time": None if self.max_time == NO_WATERMARK else self.max_time,
            "watermark": None if self.max_time == NO_WATERMARK else self.watermark,
        }

    # -- checkpoints --------------------------------------------------------------------------

    def checkpoint_records(self) -> tuple[dict[str, bytes], set[str]]:
        """What changed since the last call, as records relative to the pipeline's prefix;
        ``meta`` always."""
        puts: dict[str, bytes] = {}
        deletes: set[str] = set()
        for op in self.stateful:
            written, deleted = op.changes()
            puts.update({f"op/{op.name}/{name}": raw for name, raw in written.items()})
            deletes.update(f"op/{op.name}/{name}" for name in deleted)
        meta = {
            "fingerprint": self.fingerprint,
            "seq": self.seq,
            "max_time": self.max_time,
            "events_seen": self.events_seen,
            "events_in": self.events_in,
            "invalid": [(r.invalid, r.last_invalid) for r in self.readers],
            "ops": {op.name: op.meta() for op in self.stateful},
        }
        puts["meta"] = dumps(meta)
        return puts, deletes

    @staticmethod
    def stored_fingerprint(records: dict[str, bytes]) -> str | None:
        raw = records.get("meta")
        return None if raw is None else str(loads(raw)["fingerprint"])

    def restore(self, records: dict[str, bytes]) -> None:
        """Load the state saved by ``checkpoint_records`` (relative names)."""
        meta = loads(records["meta"])
        self.seq = meta["seq"]
        self.max_time = meta["max_time"]
        self.events_seen = meta["events_seen"]
        self.events_in = meta["events_in"]
        for reader, (invalid, last) in zip(self.readers, meta["invalid"], strict=True):
            reader.invalid, reader.last_invalid = invalid, last
        # a window join reads its sides' windows, so it restores after them
        for op in sorted(self.stateful, key=lambda op: isinstance(op, WindowJoin)):
            prefix = f"op/{op.name}/"
            own = {k[len(prefix) :]: v for k, v in records.items() if k.startswith(prefix)}
            op.restore(own, meta["ops"][op.name])


def _default_rows(
    key_column: str | None, stage: AggregateStage
) -> tuple[RowBuilder, tuple[Column, ...]]:
    """Rows ``{key, window_start, window_end, aggregates...}`` and their columns."""
    result = stage.aggregates.result
    names = stage.aggregates.names
    window = (Column("window_start", TIMESTAMP), Column("window_end", TIMESTAMP))
    if key_column is None:

        def row(key: Any, start: int, end: int, acc: Any) -> dict[str, Any]:
            values = {"window_start": start, "window_end": end}
            values.update(result(acc))
            return values

        return row, (*window, *(Column(n) for n in names))

    def keyed_row(key: Any, start: int, end: int, acc: Any) -> dict[str, Any]:
        values = {key_column: key, "window_start": start, "window_end": end}
        values.update(result(acc))
        return values

    return keyed_row, (Column(key_column), *window, *(Column(n) for n in names))
