"""Aggregates: how a window's records become values.

An aggregate is four functions over an accumulator (as in Flink's ``AggregateFunction``):
``create()`` the empty accumulator, ``add(acc, record)`` one more record, ``merge(a, b)`` two
partial results (session windows merge when they touch), and ``result(acc)`` the value. ``add``
and ``merge`` return the new accumulator, so accumulators may be immutable (numbers, tuples).
Accumulators are pickled into checkpoints.

The built-ins (``Count``, ``Sum``, ``Min``, ``Max``, ``Avg``) read their input with ``of``: None
for the record itself, a field name for ``record[field]`` of a JSON object, or a function of
the record. Like SQL, they skip None (NULL) inputs, and ``Sum``/``Min``/``Max``/``Avg`` of no
values is None.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from .errors import BadCallbackResult, PipelineDefinitionError

__all__ = [
    "EMPTY",
    "Aggregate",
    "AggregateSet",
    "Avg",
    "Count",
    "Max",
    "Min",
    "Reduce",
    "Sum",
]

Of = str | Callable[[Any], Any] | None


class _Empty:
    """The accumulator of a ``Reduce`` that has seen nothing; pickles as a reference, so it
    stays the same object across a checkpoint."""

    def __reduce__(self) -> str:
        return "EMPTY"

    def __repr__(self) -> str:
        return "EMPTY"


EMPTY = _Empty()


def _reader(of: Of) -> Callable[[Any], Any] | None:
    if of is None:
        return None
    if isinstance(of, str):
        field = of

        def read(record: Any) -> Any:
            try:
                return record.get(field)
            except AttributeError:
                raise BadCallbackResult(
                    f"reads field {field!r}, but the record is a {type(record).__name__}, not a "
                    "JSON object; pass a function as 'of' for other records"
                ) from None

        return read
    if callable(of):
        return of
    raise PipelineDefinitionError(f"'of' must be a field name, a function or None, got {of!r}")


class Aggregate:
    """Base of aggregates. Subclass it for a custom one: ``create``, ``add`` and ``result``,
    and ``merge`` if it is to work with session windows."""

    mergeable = True

    def create(self) -> Any:
        raise NotImplementedError

    def add(self, acc: Any, record: Any) -> Any:
        raise NotImplementedError

    def merge(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def result(self, acc: Any) -> Any:
        return acc

    def describe(self) -> str:
        return type(self).__name__

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "mergeable" not in cls.__dict__:
            cls.mergeable = cls.merge is not Aggregate.merge


class Count(Aggregate):
    """Records, or (with ``of``) non-null values."""

    def __init__(self, of: Of = None) -> None:
        self._read = _reader(of)
        self._of = of

    def create(self) -> int:
        return 0

    def add(self, acc: int, record: Any) -> int:
        if self._read is None:
            return acc + 1
        return acc if self._read(record) is None else acc + 1

    def merge(self, a: int, b: int) -> int:
        return a + b

    def describe(self) -> str:
        return f"Count({_name(self._of)})"


class _OfValues(Aggregate):
    """An aggregate of the non-null values read with ``of``, which must be of ``accepts``."""

    accepts: tuple[type, ...] = (int, float)
    needs = "numbers"

    def __init__(self, of: Of = None) -> None:
        self._read = _reader(of)
        self._of = of

    def create(self) -> Any:
        return None

    def _value(self, record: Any) -> Any:
        value = record if self._read is None else self._read(record)
        if value is not None and (isinstance(value, bool) or not isinstance(value, self.accepts)):
            raise BadCallbackResult(
                f"{self.describe()} needs {self.needs}, got {value!r} ({type(value).__name__})"
            )
        return value

    def describe(self) -> str:
        return f"{type(self).__name__}({_name(self._of)})"


class Sum(_OfValues):
    def add(self, acc: Any, record: Any) -> Any:
        value = self._value(record)
        if value is None:
            return acc
        return value if acc is None else acc + value

    def merge(self, a: Any, b: Any) -> Any:
        return b if a is None else a if b is None else a + b


class _Extreme(_OfValues):
    """Min or Max: the accumulator is the extreme value so far; ties keep the one held."""

    accepts = (int, float, str)
    needs = "numbers or strings"

    beats: Callable[[Any, Any], Any]  # (value, held): does value take the place of held?

    def add(self, acc: Any, record: Any) -> Any:
        value = self._value(record)
        if value is None:
            return acc
        return value if acc is None or self.beats(value, acc) else acc

    def merge(self, a: Any, b: Any) -> Any:
        return b if a is None else a if b is None or not self.beats(b, a) else b


class Min(_Extreme):
    beats = staticmethod(operator.lt)


class Max(_Extreme):
    beats = staticmethod(operator.gt)


class Avg(_OfValues):
    """The mean of the non-null values; the accumulator is ``(sum, count)``."""

    def create(self) -> tuple[Any, int]:
        return (0, 0)

    def add(self, acc: tuple[Any, int], record: Any) -> tuple[Any, int]:
        value = self._value(record)
        if value is None:
            return acc
        return (acc[0] + value, acc[1] + 1)

    def merge(self, a: tuple[Any, int], b: tuple[Any, int]) -> tuple[Any, int]:
        return (a[0] + b[0], a[1] + b[1])

    def result(self, acc: tuple[Any, int]) -> Any:
        return acc[0] / acc[1] if acc[1] else None


class Reduce(Aggregate):
    """Fold the records with ``fn(a, b)``, which also merges two partial results (so it must
    be associative, as Flink's ``ReduceFunction``)."""

    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        if not callable(fn):
            raise PipelineDefinitionError(f"reduce needs a function of two records, got {fn!r}")
        self._fn = fn

    def create(self) -> Any:
        return EMPTY

    def add(self, acc: Any, record: Any) -> Any:
        if acc is EMPTY:
            return record
        result = self._fn(acc, record)
        if result is None:
            raise BadCallbackResult("the reduce function returned None; return the combined value")
        return result

    def merge(self, a: Any, b: Any) -> Any:
        if a is EMPTY:
            return b
        return a if b is EMPTY else self.add(a, b)

    def result(self, acc: Any) -> Any:
        return None if acc is EMPTY else acc

    def describe(self) -> str:
        return f"Reduce({getattr(self._fn, '__qualname__', 'fn')})"


class _Checked(Aggregate):
    """A user's aggregate, with its results checked (builtins are trusted)."""

    def __init__(self, inner: Aggregate) -> None:
        self.inner = inner
        self.mergeable = inner.mergeable

    def create(self) -> Any:
        return self._check(self.inner.create(), "create()")

    def add(self, acc: Any, record: Any) -> Any:
        return self._check(self.inner.add(acc, record), "add()")

    def merge(self, a: Any, b: Any) -> Any:
        return self._check(self.inner.merge(a, b), "merge()")

    def result(self, acc: Any) -> Any:
        return self.inner.result(acc)

    def describe(self) -> str:
        return self.inner.describe()

    def _check(self, acc: Any, call: str) -> Any:
        if acc is None:
            raise BadCallbackResult(
                f"{self.inner.describe()}.{call} returned None; it must return the accumulator"
            )
        return acc


_BUILTIN = (Count, Sum, Min, Max, Avg, Reduce)


class AggregateSet:
    """Named aggregates computed together: one accumulator per window and key (the aggregate's
    own when there is one, else a list), and ``result`` gives ``{name: value}``."""

    def __init__(self, named: Mapping[str, Aggregate]) -> None:
        if not named:
            raise PipelineDefinitionError("aggregate() needs at least one named aggregate")
        for name, agg in named.items():
            if not isinstance(agg, Aggregate):
                raise PipelineDefinitionError(
                    f"aggregate {name!r} must be an Aggregate (Count(), Sum('field'), ...), "
                    f"got {agg!r}"
                )
        self.names = tuple(named)
        self.aggregates = tuple(
            agg if isinstance(agg, _BUILTIN) else _Checked(agg) for agg in named.values()
        )
        self.mergeable = all(agg.mergeable for agg in self.aggregates)
        if len(self.aggregates) == 1:
            (only,) = self.aggregates
            (name,) = self.names
            self.create = only.create  # type: ignore[method-assign]
            self.add = only.add  # type: ignore[method-assign]
            self.merge = only.merge  # type: ignore[method-assign]
            self.result = lambda acc: {name: only.result(acc)}  # type: ignore[method-assign]

    def create(self) -> Any:
        return [agg.create() for agg in self.aggregates]

    def add(self, acc: Any, record: Any) -> Any:
        for i, agg in enumerate(self.aggregates):
            acc[i] = agg.add(acc[i], record)
        return acc

    def merge(self, a: Any, b: Any) -> Any:
        return [agg.merge(x, y) for agg, x, y in zip(self.aggregates, a, b, strict=True)]

    def result(self, acc: Any) -> dict[str, Any]:
        return {
            name: agg.result(value)
            for name, agg, value in zip(self.names, self.aggregates, acc, strict=True)
        }

    def describe(self) -> dict[str, str]:
        return {name: agg.describe() for name, agg in zip(self.names, self.aggregates, strict=True)}


def _name(of: Of) -> str:
    if of is None:
        return ""
    return repr(of) if isinstance(of, str) else getattr(of, "__qualname__", "fn")
