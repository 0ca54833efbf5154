"""The stateless core: steps that transform a ``RecordBatch``, and sinks.

One primitive, ``Transform``: a named function from a batch to a batch. ``flat_map`` is the
general record-level form (each record becomes zero or more records); ``map`` (exactly one)
and ``filter`` (zero or one) are the same idea specialised so that they cost one C-level pass
over the batch instead of a list per record, and ``key_by`` sets the grouping key. Each step
checks what its callback returns: a wrong result (or an exception) raises
``BadCallbackResult`` naming the record, which the runtime turns into a ``StepError`` naming
the pipeline and the step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any

from changestream import is_async_callable

from .errors import BadCallbackResult, PipelineDefinitionError
from .records import RecordBatch

__all__ = [
    "FilterStep",
    "FlatMapStep",
    "KeyByStep",
    "MapStep",
    "SinkStep",
    "Transform",
    "check_key",
    "key_order",
    "show",
]

_SCALARS = frozenset({str, int, float, bool})
_KEY_TYPES = _SCALARS | {tuple}
_TUPLE_PARTS = _SCALARS | {type(None)}


def show(record: Any, limit: int = 160) -> str:
    """A record for an error message, cut to ``limit`` characters."""
    text = repr(record)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_key(key: Any) -> None:
    """Group keys are str, int, float or bool, or tuples of those and None (SQL's multi-column
    GROUP BY): hashable, picklable and rendered as JSON in results."""
    kind = type(key)
    if kind in _SCALARS:
        return
    if kind is tuple and all(type(part) in _SCALARS or part is None for part in key):
        return
    raise BadCallbackResult(
        f"returned the key {show(key)} ({kind.__name__}); a key must be a str, int, float, bool "
        "or a tuple of those"
    )


def key_order(key: Any) -> tuple[Any, ...]:
    """A sort key for group keys of any allowed type (results list rows in a stable order)."""
    if key is None:
        return (0,)
    if type(key) is tuple:
        return (3, tuple(key_order(part) for part in key))
    if isinstance(key, str):
        return (2, key)
    return (1, key)  # numbers and bools compare with each other


def _all_valid_keys(keys: list[Any]) -> bool:
    """``check_key`` for a whole batch, in a few C-level passes."""
    kinds = set(map(type, keys))
    if kinds <= _SCALARS:
        return True
    if not kinds <= _KEY_TYPES:
        return False
    parts = chain.from_iterable(key for key in keys if type(key) is tuple)
    return set(map(type, parts)) <= _TUPLE_PARTS


class Transform:
    """A stateless step. ``kind`` names the operation, ``name`` this use of it."""

    kind = "transform"

    def __init__(self, fn: Callable[[Any], Any], name: str | None = None) -> None:
        if not callable(fn):
            raise PipelineDefinitionError(f"{self.kind} needs a function, got {fn!r}")
        self.fn = fn
        self.name = name or self.kind

    def apply(self, batch: RecordBatch) -> RecordBatch:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}

    def fail(self, problem: str) -> BadCallbackResult:
        return BadCallbackResult(problem)

    def _call_all(self, values: list[Any]) -> list[Any]:
        """``[fn(v) for v in values]`` at C speed; an exception names the record."""
        fn = self.fn
        try:
            return list(map(fn, values))
        except Exception as first:
            for value in values:
                try:
                    fn(value)
                except Exception as exc:
                    raise self.fail(
                        f"the callback raised {type(exc).__name__}: {exc} (record {show(value)})"
                    ) from exc
            raise self.fail(f"the callback raised {type(first).__name__}: {first}") from first


class FlatMapStep(Transform):
    """Each record becomes the records of the list (or other iterable) ``fn`` returns."""

    kind = "flat_map"

    def apply(self, batch: RecordBatch) -> RecordBatch:
        results = self._call_all(batch.values)
        times: list[int] = []
        positions: list[int] = []
        keys: list[Any] | None = None if batch.keys is None else []
        values: list[Any] = []
        for i, result in enumerate(results):
            kind = type(result)
            if kind is not list and kind is not tuple:
                result = self._as_records(result, batch.values[i])
            n = len(result)
            if n == 0:
                continue
            values.extend(result)
            times.extend([batch.times[i]] * n)
            positions.extend([batch.positions[i]] * n)
            if keys is not None:
                assert batch.keys is not None
                keys.extend([batch.keys[i]] * n)
        return RecordBatch(times, positions, keys, values)

    def _as_records(self, result: Any, record: Any) -> list[Any]:
        if isinstance(result, str | bytes | dict) or not isinstance(result, Iterable):
            raise self.fail(
                f"the callback returned {show(result)} ({type(result).__name__}) for record "
                f"{show(record)}; a flat_map returns a list of records (or another iterable, "
                "but not a str, bytes or dict)"
            )
        return list(result)


class MapStep(Transform):
    """Each record becomes ``fn(record)``, which must not be None (filter drops records)."""

    kind = "map"

    def apply(self, batch: RecordBatch) -> RecordBatch:
        results = self._call_all(batch.values)
        if type(None) in set(map(type, results)):
            record = batch.values[results.index(None)]
            raise self.fail(
                f"the callback returned None for record {show(record)}; return the new record "
                "(use filter to drop records)"
            )
        return batch.with_values(results)


class FilterStep(Transform):
    """Keeps the records for which ``fn`` returns True; it must return a bool."""

    kind = "filter"

    def apply(self, batch: RecordBatch) -> RecordBatch:
        flags = self._call_all(batch.values)
        if set(map(type, flags)) - {bool}:
            i = next(i for i, flag in enumerate(flags) if type(flag) is not bool)
            raise self.fail(
                f"the callback returned {show(flags[i])} ({type(flags[i]).__name__}) for record "
                f"{show(batch.values[i])}; a filter returns True or False"
            )
        if all(flags):
            return batch
        return batch.select(flags)


class KeyByStep(Transform):
    """Sets each record's grouping key to ``fn(record)``; windows and joins are per key."""

    kind = "key_by"

    def __init__(
        self, fn: Callable[[Any], Any], name: str | None = None, *, column: str = "key"
    ) -> None:
        super().__init__(fn, name)
        self.column = column

    def apply(self, batch: RecordBatch) -> RecordBatch:
        keys = self._call_all(batch.values)
        if not _all_valid_keys(keys):
            for key, record in zip(keys, batch.values, strict=True):
                try:
                    check_key(key)
                except BadCallbackResult as exc:
                    raise self.fail(f"the callback {exc.problem} (record {show(record)})") from None
        return batch.with_keys(keys)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "column": self.column}


class SinkStep:
    """Delivers a pipeline's output: result updates (``ResultUpdate``) of a pipeline that
    aggregates, else its records. Plain or async callables (``is_async_callable``: ``async def``,
    an object with an ``async def __call__``, a partial of either), called in order, at least
    once (outputs after the last checkpoint come again after a crash)."""

    kind = "sink"

    def __init__(self, fn: Callable[[Any], Any], name: str | None = None) -> None:
        if not callable(fn):
            raise PipelineDefinitionError(f"sink needs a function, got {fn!r}")
        self.fn = fn
        self.name = name or "sink"
        self.is_async = is_async_callable(fn)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}
