"""Built-in and custom aggregates: values, NULL handling, merging."""

from __future__ import annotations

import pytest

from compute import (
    EMPTY,
    Aggregate,
    AggregateSet,
    Avg,
    Count,
    Max,
    Min,
    Reduce,
    Session,
    StepError,
    StreamPipeline,
    Sum,
    Tumbling,
)

from .conftest import Events, rows, run


def fold(aggregate: Aggregate, records: list) -> object:  # type: ignore[type-arg]
    acc = aggregate.create()
    for record in records:
        acc = aggregate.add(acc, record)
    return aggregate.result(acc)


def test_builtins_skip_nulls_like_sql() -> None:
    records = [{"v": 3}, {"v": None}, {}, {"v": 1.5}]
    assert fold(Count(), records) == 4
    assert fold(Count("v"), records) == 2
    assert fold(Sum("v"), records) == 4.5
    assert fold(Min("v"), records) == 1.5
    assert fold(Max("v"), records) == 3
    assert fold(Avg("v"), records) == 2.25
    assert fold(Sum("v"), [{}]) is None and fold(Avg("v"), []) is None


def test_of_takes_a_function_and_min_max_take_strings() -> None:
    assert fold(Sum(lambda r: r * 2), [1, 2]) == 6
    assert fold(Min("name"), [{"name": "b"}, {"name": "a"}]) == "a"


def test_merge_combines_partial_results() -> None:
    for aggregate, a, b, expected in [
        (Count(), [1, 2], [3], 3),
        (Sum(), [1, 2], [3], 6),
        (Min(), [5], [2, 9], 2),
        (Max(), [], [2, 9], 9),
        (Avg(), [1, 2], [6], 3),
        (Reduce(lambda x, y: x + y), [1], [2, 3], 6),
    ]:
        accs = []
        for part in (a, b):
            acc = aggregate.create()
            for value in part:
                acc = aggregate.add(acc, value)
            accs.append(acc)
        assert aggregate.result(aggregate.merge(*accs)) == expected


def test_reduce_of_nothing_is_none_and_empty_survives_pickling() -> None:
    import pickle

    assert Reduce(max).result(EMPTY) is None
    assert pickle.loads(pickle.dumps(EMPTY)) is EMPTY


def test_aggregate_set_names_its_results() -> None:
    aggregates = AggregateSet({"n": Count(), "top": Max("v")})
    acc = aggregates.create()
    for record in ({"v": 1}, {"v": 7}):
        acc = aggregates.add(acc, record)
    assert aggregates.result(acc) == {"n": 2, "top": 7}
    assert aggregates.result(aggregates.merge(acc, acc)) == {"n": 4, "top": 7}


class Distinct(Aggregate):
    """A custom aggregate: the set of distinct values, mergeable."""

    def create(self) -> frozenset:  # type: ignore[type-arg]
        return frozenset()

    def add(self, acc, record):  # type: ignore[no-untyped-def]
        return acc | {record["page"]}

    def merge(self, a, b):  # type: ignore[no-untyped-def]
        return a | b

    def result(self, acc):  # type: ignore[no-untyped-def]
        return sorted(acc)


def test_custom_aggregates_work_in_session_windows(events: Events) -> None:
    p = (
        StreamPipeline("c", ["k/.*"], event_time="t")
        .window(Session(5))
        .aggregate(pages=Distinct(), n=Count())
    )
    docs = [{"t": 1, "page": "a"}, {"t": 10, "page": "b"}, {"t": 5, "page": "a"}]
    runtime, _ = run(p, events.docs("k/1", docs))
    assert [(r["window_start"], r["window_end"], r["pages"], r["n"]) for r in rows(runtime)] == [
        (1, 15, ["a", "b"], 3)
    ]


def test_a_custom_aggregate_returning_none_is_a_step_error(events: Events) -> None:
    class Broken(Aggregate):
        def create(self) -> int:
            return 0

        def add(self, acc, record):  # type: ignore[no-untyped-def]
            acc += 1  # forgot the return

    p = StreamPipeline("c", ["k/.*"], event_time="t").window(Tumbling(10)).aggregate(n=Broken())
    with pytest.raises(
        StepError, match=r"Broken.add\(\) returned None; it must return the accumulator"
    ):
        run(p, events.docs("k/1", [{"t": 1}]))


def test_reduce_in_a_pipeline(events: Events) -> None:
    p = (
        StreamPipeline("r", ["k/.*"], event_time="t")
        .map(lambda r: r["v"])
        .window(Tumbling(10))
        .reduce(lambda a, b: max(a, b), column="peak")
    )
    runtime, _ = run(p, events.docs("k/1", [{"t": 1, "v": 4}, {"t": 2, "v": 9}, {"t": 3, "v": 2}]))
    assert [r["peak"] for r in rows(runtime)] == [9]
