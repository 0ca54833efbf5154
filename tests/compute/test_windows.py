"""Window boundaries, alignment, offsets and session merging."""

from __future__ import annotations

from datetime import timedelta

import pytest

from compute import (
    Count,
    PipelineDefinitionError,
    Session,
    Sliding,
    StreamPipeline,
    Tumbling,
)
from compute.windows import window_starts

from .conftest import Events, rows, run


def windows_of(runtime_rows: list[dict]) -> list[tuple[int, int, int]]:
    return [(r["window_start"], r["window_end"], r["n"]) for r in runtime_rows]


def counting(spec, **options) -> StreamPipeline:  # type: ignore[no-untyped-def]
    return (
        StreamPipeline("w", ["k/.*"], event_time="t", **options).window(spec).aggregate(n=Count())
    )


@pytest.mark.parametrize(
    ("t", "start"),
    [(0, 0), (9, 0), (10, 10), (11, 10), (-1, -10), (-10, -10), (-11, -20)],
)
def test_tumbling_windows_are_half_open_and_aligned_to_the_epoch(t: int, start: int) -> None:
    assert window_starts(Tumbling(10), t) == [start]


@pytest.mark.parametrize(("t", "start"), [(0, -7), (2, -7), (3, 3), (12, 3), (13, 13)])
def test_tumbling_offset_shifts_the_alignment(t: int, start: int) -> None:
    assert window_starts(Tumbling(10, offset=3), t) == [start]


def test_offsets_are_reduced_modulo_the_size_and_may_be_negative() -> None:
    assert Tumbling(10, offset=13) == Tumbling(10, offset=3) == Tumbling(10, offset=-7)
    assert Sliding(10, 5, offset=6).offset == 1


def test_sliding_windows_holding_an_event_latest_first() -> None:
    assert window_starts(Sliding(size=10, slide=5), 12) == [10, 5]
    assert window_starts(Sliding(size=10, slide=5), 10) == [10, 5]  # [5, 15) holds 10, [0, 10) not
    assert window_starts(Sliding(size=10, slide=3), 10) == [9, 6, 3]  # ceil(10/3) windows
    assert window_starts(Sliding(size=10, slide=10), 10) == [10]  # a slide of size is tumbling


def test_durations_accept_timedelta_and_reject_nonsense() -> None:
    assert Tumbling(timedelta(minutes=1)).size == 60_000
    assert Session(timedelta(seconds=2)).gap == 2000
    for bad in (
        lambda: Tumbling(0),
        lambda: Sliding(5, 10),
        lambda: Session(-1),
        lambda: Tumbling(1.5),
    ):  # type: ignore[arg-type]
        with pytest.raises(PipelineDefinitionError):
            bad()


def test_events_on_a_boundary_belong_to_the_next_window(events: Events) -> None:
    docs = [{"t": t} for t in (0, 9, 10, 19, 20)]
    runtime, _ = run(counting(Tumbling(10)), events.docs("k/1", docs))
    assert windows_of(rows(runtime)) == [(0, 10, 2), (10, 20, 2), (20, 30, 1)]


def test_sliding_counts_each_event_in_every_window_holding_it(events: Events) -> None:
    docs = [{"t": t} for t in (1, 6, 12)]
    runtime, _ = run(counting(Sliding(10, 5)), events.docs("k/1", docs))
    # 1 -> [-5,5) [0,10); 6 -> [0,10) [5,15); 12 -> [5,15) [10,20)
    assert windows_of(rows(runtime)) == [(-5, 5, 1), (0, 10, 2), (5, 15, 2), (10, 20, 1)]


def test_tumbling_with_offset_in_a_pipeline(events: Events) -> None:
    docs = [{"t": t} for t in (0, 2, 3, 12, 13)]
    runtime, _ = run(counting(Tumbling(10, offset=3)), events.docs("k/1", docs))
    assert windows_of(rows(runtime)) == [(-7, 3, 2), (3, 13, 2), (13, 23, 1)]


def session_rows(times: list[int], gap: int, events: Events) -> list[tuple[int, int, int]]:
    runtime, _ = run(counting(Session(gap)), events.docs("k/1", [{"t": t} for t in times]))
    return windows_of(rows(runtime))


def test_a_session_is_first_to_last_plus_gap(events: Events) -> None:
    assert session_rows([100, 103, 104], 5, events) == [(100, 109, 3)]


def test_sessions_exactly_one_gap_apart_touch_and_merge(events: Events) -> None:
    # [100, 105) and [105, 110) touch at 105: one session
    assert session_rows([100, 105], 5, events) == [(100, 110, 2)]


def test_sessions_more_than_one_gap_apart_stay_apart(events: Events) -> None:
    assert session_rows([100, 106], 5, events) == [(100, 105, 1), (106, 111, 1)]


def test_an_out_of_order_event_bridges_two_sessions_into_one(events: Events) -> None:
    # [100,105) and [110,115) are apart until 105 arrives: [105,110) touches both
    assert session_rows([100, 110, 105], 5, events) == [(100, 115, 3)]


def test_an_event_inside_a_session_does_not_extend_it(events: Events) -> None:
    assert session_rows([100, 108, 102], 10, events) == [(100, 118, 3)]


def test_an_early_event_extends_a_session_backwards(events: Events) -> None:
    assert session_rows([100, 97], 5, events) == [(97, 105, 2)]


def test_sessions_are_per_key(events: Events) -> None:
    pipeline = (
        StreamPipeline("w", ["k/.*"], event_time="t")
        .key_by("user")
        .window(Session(5))
        .aggregate(n=Count())
    )
    docs = [{"user": "a", "t": 100}, {"user": "b", "t": 102}, {"user": "a", "t": 104}]
    runtime, _ = run(pipeline, events.docs("k/1", docs))
    got = [(r["user"], r["window_start"], r["window_end"], r["n"]) for r in rows(runtime)]
    assert got == [("a", 100, 109, 2), ("b", 102, 107, 1)]
