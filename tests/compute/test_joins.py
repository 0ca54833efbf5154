"""Window joins of two aggregating pipelines, and interval joins of two keyed record streams."""

from __future__ import annotations

import pytest

from compute import (
    Count,
    PipelineDefinitionError,
    Session,
    Sliding,
    StreamPipeline,
    Sum,
    Tumbling,
)

from .conftest import Events, rows, run


def views(spec=None, **options) -> StreamPipeline:  # type: ignore[no-untyped-def]
    return (
        StreamPipeline("views", ["views/.*"], event_time="t", **options)
        .key_by("ad")
        .window(spec or Tumbling(10))
        .aggregate(views=Count())
    )


def clicks(spec=None) -> StreamPipeline:  # type: ignore[no-untyped-def]
    return (
        StreamPipeline("clicks", ["clicks/.*"], event_time="t")
        .key_by("ad")
        .window(spec or Tumbling(10))
        .aggregate(clicks=Count(), spent=Sum("cost"))
    )


def traffic(events: Events) -> list:  # type: ignore[type-arg]
    return [
        events.make("views/1", {"ad": "a", "t": 1}),
        events.make("views/2", {"ad": "a", "t": 2}),
        events.make("clicks/1", {"ad": "a", "t": 3, "cost": 5}),
        events.make("views/3", {"ad": "b", "t": 4}),
        events.make("clicks/2", {"ad": "c", "t": 5, "cost": 1}),
        events.make("views/4", {"ad": "a", "t": 12}),
    ]


def test_window_join_inner_has_rows_where_both_sides_do(events: Events) -> None:
    runtime, _ = run(views().join(clicks(), name="ctr"), traffic(events))
    assert rows(runtime) == [
        {"ad": "a", "window_start": 0, "window_end": 10, "views": 2, "clicks": 1, "spent": 5}
    ]
    assert [c.name for c in runtime.columns] == [
        "ad", "window_start", "window_end", "views", "clicks", "spent",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("how", "keys"),
    [("left", ["a", "b", "a"]), ("right", ["a", "c"]), ("full", ["a", "b", "c", "a"])],
)
def test_outer_window_joins(how: str, keys: list[str], events: Events) -> None:
    runtime, _ = run(views().join(clicks(), how=how, name="ctr"), traffic(events))
    assert [r["ad"] for r in rows(runtime)] == keys
    missing = [r for r in rows(runtime) if r["ad"] == "b"]
    assert missing in (
        [],
        [
            {
                "ad": "b",
                "window_start": 0,
                "window_end": 10,
                "views": 1,
                "clicks": None,
                "spent": None,
            }
        ],
    )


def test_window_join_with_select_and_changes_per_record(events: Events) -> None:
    joined = views().join(
        clicks(),
        how="left",
        select=lambda v, c: {"ad": v["ad"], "ctr": (c["clicks"] if c else 0) / v["views"]},
        name="ctr",
    )
    _, updates = run(joined, traffic(events))
    assert [(u.row["ad"], u.row["ctr"]) for u in updates] == [
        ("a", 0.0), ("a", 0.0), ("a", 0.5), ("b", 0.0), ("a", 0.0),
    ]  # fmt: skip


def test_window_join_emits_final_rows_when_the_window_closes(events: Events) -> None:
    joined = views(emit="final").join(clicks(), name="ctr")
    runtime, updates = run(joined, traffic(events), batch=1)
    assert [(u.row["ad"], u.row["window_start"]) for u in updates] == [("a", 0)]
    # windows_fired counts the sides' (key, window) firings: views a, b and clicks a, c
    assert runtime.stats()["windows_fired"] == 4


def test_window_join_shapes_are_checked() -> None:
    with pytest.raises(PipelineDefinitionError, match="different windows"):
        views().join(clicks(Tumbling(20)))
    with pytest.raises(PipelineDefinitionError, match="session windows"):
        views(Session(5)).join(clicks(Session(5)))
    with pytest.raises(PipelineDefinitionError, match="must end with window"):
        views().join(StreamPipeline("x", ["x/.*"]).key_by("ad"))
    with pytest.raises(PipelineDefinitionError, match="both sides produce 'views'"):
        views().join(
            views()
            .with_options()
            .__class__("other", ["o/.*"])
            .key_by("ad")
            .window(Tumbling(10))
            .aggregate(views=Count())
        )
    with pytest.raises(PipelineDefinitionError, match="both sides are named"):
        views().join(views())
    with pytest.raises(PipelineDefinitionError, match="how must be one of"):
        views().join(clicks(), how="outer")


def test_window_join_of_sliding_windows(events: Events) -> None:
    runtime, _ = run(views(Sliding(10, 5)).join(clicks(Sliding(10, 5)), name="j"), traffic(events))
    assert [(r["window_start"], r["views"], r["clicks"]) for r in rows(runtime)] == [
        (-5, 2, 1),
        (0, 2, 1),
    ]


def orders(out_of_orderness: int = 0) -> StreamPipeline:
    return StreamPipeline(
        "orders", ["orders/.*"], event_time="t", out_of_orderness=out_of_orderness
    ).key_by("id")


def payments() -> StreamPipeline:
    return StreamPipeline("payments", ["payments/.*"], event_time="t").key_by("order")


def test_interval_join_pairs_records_within_the_bounds(events: Events) -> None:
    joined = orders(out_of_orderness=20).interval_join(  # the pipeline's: nothing is late
        payments(), lower=0, upper=10, select=lambda o, p: {"id": o["id"], "paid": p["amount"]}
    )
    seen: list[dict] = []
    stream = [
        events.make("orders/1", {"id": "o1", "t": 100}),
        events.make("payments/1", {"order": "o1", "t": 105, "amount": 7}),  # within [100, 110]
        events.make("payments/2", {"order": "o1", "t": 111, "amount": 8}),  # past upper
        events.make("payments/3", {"order": "o2", "t": 104, "amount": 9}),  # before its order
        events.make("orders/2", {"id": "o2", "t": 103}),  # 104 within [103, 113]
        events.make("payments/4", {"order": "o1", "t": 110, "amount": 1}),  # bound inclusive
    ]
    run(joined.sink(seen.append), stream, batch=2)
    assert seen == [{"id": "o1", "paid": 7}, {"id": "o2", "paid": 9}, {"id": "o1", "paid": 1}]


def test_interval_join_feeds_a_window_at_the_pairs_time(events: Events) -> None:
    joined = (
        orders()
        .interval_join(payments(), lower=-5, upper=5)
        .window(Tumbling(100))
        .aggregate(pairs=Count())
    )
    stream = [
        events.make("orders/1", {"id": "o1", "t": 98}),
        events.make("payments/1", {"order": "o1", "t": 102}),  # pair at 102: window [100, 200)
    ]
    runtime, _ = run(joined, stream)
    assert [(r["id"], r["window_start"], r["pairs"]) for r in rows(runtime)] == [("o1", 100, 1)]


def test_interval_join_drops_late_records_and_forgets_old_ones(events: Events) -> None:
    joined = orders().interval_join(payments(), lower=0, upper=10).sink(lambda pair: None)
    stream = [
        events.make("orders/1", {"id": "o1", "t": 100}),
        events.make("orders/2", {"id": "o2", "t": 200}),  # watermark 200: o1 can match no more
        events.make("payments/1", {"order": "o1", "t": 105}),  # late: 105 < watermark 200
    ]
    runtime, _ = run(joined, stream, batch=1)
    join = runtime.stateful[0]
    assert runtime.stats()["late_dropped"] == 1
    assert join.buffered() == 1  # only o2 is still buffered  # type: ignore[attr-defined]


def test_interval_join_needs_keyed_records() -> None:
    with pytest.raises(PipelineDefinitionError, match="must be keyed records"):
        StreamPipeline("a", ["a/.*"]).interval_join(payments(), lower=0, upper=1)
    with pytest.raises(PipelineDefinitionError, match=r"lower .* exceeds upper"):
        orders().interval_join(payments(), lower=5, upper=1)
