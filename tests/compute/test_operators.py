"""The stateless core and the shape of pipelines: callbacks are checked, errors name the step."""

from __future__ import annotations

import pytest

from compute import (
    Count,
    PipelineDefinitionError,
    Session,
    StepError,
    StreamPipeline,
    Tumbling,
)

from .conftest import Events, rows, run


def base() -> StreamPipeline:
    return StreamPipeline("ops", ["k/.*"], event_time="t")


def counted(p: StreamPipeline) -> StreamPipeline:
    return p.window(Tumbling(10)).aggregate(n=Count())


def test_filter_map_flat_map_and_key_by_compose(events: Events) -> None:
    p = (
        base()
        .filter(lambda r: r["ok"])
        .map(lambda r: {**r, "user": r["user"].upper()})
        .flat_map(lambda r: [r] * r["times"])
        .key_by("user")
    )
    stream = events.docs(
        "k/1",
        [
            {"t": 1, "ok": True, "user": "a", "times": 2},
            {"t": 2, "ok": False, "user": "b", "times": 1},
            {"t": 3, "ok": True, "user": "b", "times": 1},
            {"t": 4, "ok": True, "user": "c", "times": 0},
        ],
    )
    runtime, _ = run(counted(p), stream)
    assert [(r["user"], r["n"]) for r in rows(runtime)] == [("A", 2), ("B", 1)]


@pytest.mark.parametrize(
    ("build", "step", "message"),
    [
        (lambda p: p.filter(lambda r: "yes"), "filter", r"returned 'yes' \(str\).*True or False"),
        (lambda p: p.map(lambda r: None), "map", r"returned None for record .*use filter"),
        (
            lambda p: p.flat_map(lambda r: "ab"),
            "flat_map",
            r"returned 'ab' \(str\).*list of records",
        ),
        (lambda p: p.key_by(lambda r: ["x"]), "key_by", r"key \['x'\] \(list\).*str, int"),
        (lambda p: p.key_by(lambda r: None), "key_by", r"key None \(NoneType\)"),
        (lambda p: p.key_by("missing"), "key_by", r"has no field 'missing'"),
        (lambda p: p.map(lambda r: 1 / 0), "map", r"raised ZeroDivisionError.*record \{'t': 1"),
        (lambda p: p.map(lambda r: r, name="parse").map(lambda r: None), "map", r"returned None"),
    ],
)
def test_a_wrong_callback_result_names_the_step(
    build, step: str, message: str, events: Events
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StepError, match=message) as info:
        run(counted(build(base())), events.docs("k/1", [{"t": 1}]))
    assert info.value.step == step
    assert info.value.pipeline == "ops"
    assert f"pipeline 'ops', step '{step}'" in info.value.message


def test_named_steps_and_default_names_are_unique() -> None:
    p = base().map(lambda r: r).map(lambda r: r, name="second").map(lambda r: r)
    assert [stage.name for stage in p.stages] == ["map", "second", "map_2"]
    with pytest.raises(PipelineDefinitionError, match="already has a step named 'second'"):
        p.filter(lambda r: True, name="second")
    with pytest.raises(PipelineDefinitionError, match="without '/'"):
        p.filter(lambda r: True, name="a/b")


def test_a_failing_aggregate_names_its_step_and_the_record(events: Events) -> None:
    from compute import Sum

    p = base().window(Tumbling(10)).aggregate(total=Sum("v"), name="sums")
    with pytest.raises(
        StepError, match=r"step 'sums'.*Sum\('v'\) needs numbers, got 'x'.*record"
    ) as info:
        run(p, events.docs("k/1", [{"t": 1, "v": "x"}]))
    assert info.value.step == "sums"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda p: p.aggregate(n=Count()), r"aggregate\(...\) and reduce\(...\) need a window"),
        (lambda p: p.window(Tumbling(1)).map(lambda r: r), r"must be followed by aggregate"),
        (lambda p: counted(p).filter(lambda r: True), r"after aggregate\(...\) only sink"),
        (lambda p: p.sink(print).map(lambda r: r), r"sink\(...\) ends a pipeline"),
        (lambda p: p.window("10s"), r"takes Tumbling"),
        (lambda p: p.filter("x"), r"filter needs a function"),
        (lambda p: p.window(Tumbling(1)).aggregate(), r"needs at least one named aggregate"),
    ],
)
def test_pipelines_are_checked_as_they_are_built(build, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PipelineDefinitionError, match=message):
        build(base())


def test_a_pipeline_that_produces_nothing_is_refused() -> None:
    with pytest.raises(PipelineDefinitionError, match="produces nothing"):
        base().map(lambda r: r).validate()
    with pytest.raises(PipelineDefinitionError, match="ends with a window"):
        base().window(Tumbling(5)).validate()


def test_constructor_arguments_are_validated() -> None:
    for kwargs, message in [
        ({"name": "bad name"}, "must be 1-100 letters"),
        ({"name": "ok", "key_patterns": "k/.*"}, "must be a list, not one string"),
        ({"name": "ok", "key_patterns": ["(unclosed"]}, "not a valid RE2"),
        ({"name": "ok", "decode": "xml"}, "decode must be one of"),
        ({"name": "ok", "emit": "sometimes"}, "emit must be 'changes' or 'final'"),
        ({"name": "ok", "start_from": 0}, "start_from must be"),
        ({"name": "ok", "event_types": ["UPSERT"]}, "unknown event type"),
        ({"name": "ok", "decode": "bytes", "event_time": "t"}, "reads a field of a JSON object"),
    ]:
        with pytest.raises(PipelineDefinitionError, match=message):
            StreamPipeline(**kwargs)  # type: ignore[arg-type]


def test_session_windows_need_mergeable_aggregates() -> None:
    from compute import Aggregate

    class Last(Aggregate):
        def create(self) -> None:
            return None

        def add(self, acc, record):  # type: ignore[no-untyped-def]
            return record

    with pytest.raises(PipelineDefinitionError, match="needs a merge"):
        base().window(Session(5)).aggregate(last=Last())
    base().window(Tumbling(5)).aggregate(last=Last())  # fixed windows never merge


def test_sinks_receive_result_updates_or_records(events: Events) -> None:
    from compute import PipelineRuntime

    seen = []
    p = base().map(lambda r: r["t"]).sink(seen.append)
    runtime = PipelineRuntime(p)
    runtime.listening = True
    updates, outputs = runtime.process(events.docs("k/1", [{"t": 1}, {"t": 2}]))
    assert outputs == [1, 2]
    assert [(u.op, u.row["value"], u.row["time"]) for u in updates] == [
        ("record", 1, 1),
        ("record", 2, 2),
    ]
