"""Watermarks, firing, allowed lateness and late counts; emit modes."""

from __future__ import annotations

import random

from compute import Count, Session, Sliding, StreamPipeline, Sum, Tumbling, Watermark
from compute.watermark import NO_WATERMARK

from .conftest import Events, rows, run


def test_watermark_is_max_event_time_minus_out_of_orderness() -> None:
    watermark = Watermark(out_of_orderness=5)
    assert watermark.current == NO_WATERMARK
    assert watermark.observe(100) == 95
    assert watermark.observe(90) == 95  # never moves back
    assert watermark.observe(120) == 115


def pipeline(spec=None, **options) -> StreamPipeline:  # type: ignore[no-untyped-def]
    return (
        StreamPipeline("wm", ["k/.*"], event_time="t", **options)
        .window(spec or Tumbling(10))
        .aggregate(n=Count(), total=Sum("v"))
    )


def docs(*times: int) -> list[dict]:
    return [{"t": t, "v": t} for t in times]


def test_final_emits_each_window_once_when_the_watermark_passes_its_end(events: Events) -> None:
    runtime, updates = run(pipeline(emit="final"), events.docs("k/1", docs(1, 5, 9, 12)))
    # the watermark is 12: [0,10) fired, [10,20) is still open and not visible
    assert [(u.op, u.row["window_start"], u.row["n"]) for u in updates] == [("upsert", 0, 3)]
    assert [r["window_start"] for r in rows(runtime)] == [0]
    assert runtime.stats()["windows_fired"] == 1


def test_a_window_fires_when_the_watermark_reaches_its_end_exactly(events: Events) -> None:
    _, updates = run(pipeline(emit="final"), events.docs("k/1", docs(1, 10)))
    assert [u.row["window_start"] for u in updates] == [0]


def test_out_of_orderness_delays_firing_and_admits_late_events(events: Events) -> None:
    p = pipeline(emit="final", out_of_orderness=5)
    runtime, updates = run(p, events.docs("k/1", docs(1, 12, 8, 15)))
    # 12 -> watermark 7: [0,10) open, so 8 counts; 15 -> watermark 10: [0,10) fires with 1 and 8
    assert [(u.row["window_start"], u.row["n"], u.row["total"]) for u in updates] == [(0, 2, 9)]
    assert runtime.stats()["late_dropped"] == 0


def test_events_past_the_allowed_lateness_are_counted_and_dropped(events: Events) -> None:
    runtime, _ = run(pipeline(emit="final"), events.docs("k/1", docs(1, 25, 3, 12, 30)))
    # after 25 (watermark 25) [0,10) and [10,20) are closed: 3 and 12 are too late;
    # 30 closes [20,30)
    assert runtime.stats()["late_dropped"] == 2
    assert [(r["window_start"], r["n"]) for r in rows(runtime)] == [(0, 1), (20, 1)]


def test_allowed_lateness_updates_a_fired_window_and_fires_it_again(events: Events) -> None:
    p = pipeline(emit="final", allowed_lateness=10)
    runtime, updates = run(p, events.docs("k/1", docs(1, 12, 3, 21, 5)), batch=1)
    # 12 fires [0,10) (n=1); 3 is late but within 10 ms: [0,10) fires again with n=2;
    # 21 (watermark 21 >= 10 + 10 + ... no: end 10 + lateness 10 = 20 <= 21) closes it for good
    assert [(u.row["window_start"], u.row["n"]) for u in updates] == [(0, 1), (0, 2), (10, 1)]
    assert runtime.stats()["late_dropped"] == 1  # the 5, after 21
    assert runtime.stats()["late_updates"] == 1
    assert runtime.stats()["windows_fired"] == 2


def test_changes_emits_an_updated_row_for_every_input_record(events: Events) -> None:
    p = StreamPipeline("c", ["k/.*"], event_time="t").key_by("user").window(Tumbling(10))
    p = p.aggregate(n=Count())
    stream = events.docs(
        "k/1",
        [
            {"user": "a", "t": 1},
            {"user": "b", "t": 2},
            {"user": "a", "t": 3},
            {"user": "a", "t": 11},
        ],
    )
    _, updates = run(p, stream)
    assert [(u.op, u.row["user"], u.row["window_start"], u.row["n"]) for u in updates] == [
        ("upsert", "a", 0, 1),
        ("upsert", "b", 0, 1),
        ("upsert", "a", 0, 2),
        ("upsert", "a", 10, 1),
    ]


def test_changes_shows_open_windows_final_only_closed_ones(events: Events) -> None:
    stream = events.docs("k/1", docs(1, 12))
    changes, _ = run(pipeline(), stream)
    final, _ = run(pipeline(emit="final"), stream)
    assert [r["window_start"] for r in rows(changes)] == [0, 10]
    assert [r["window_start"] for r in rows(final)] == [0]


def test_sliding_late_event_counts_only_in_windows_still_open(events: Events) -> None:
    stream = events.docs("k/1", docs(11, 7))
    final, _ = run(pipeline(Sliding(10, 5), emit="final"), stream)
    # 11 -> watermark 11: [0,10) closed; 7 belongs to [0,10) (late) and [5,15) (open), so it
    # is not dropped, and [0,10) never existed (nothing on time fell in it)
    assert final.stats()["late_dropped"] == 0
    assert rows(final) == []  # [5,15) and [10,20) are still open
    changes, _ = run(pipeline(Sliding(10, 5)), stream)
    assert [(r["window_start"], r["n"]) for r in rows(changes)] == [(5, 2), (10, 1)]


def test_a_session_fires_when_the_watermark_passes_its_end(events: Events) -> None:
    p = pipeline(Session(5), emit="final")
    _, updates = run(p, events.docs("k/1", docs(100, 103, 108, 120)), batch=1)
    # 100,103 -> [100,108); 108 touches it -> [100,113); 120 passes 113: it fires
    assert [(u.row["window_start"], u.row["window_end"], u.row["n"]) for u in updates] == [
        (100, 113, 3)
    ]


def test_late_session_event_is_dropped_when_its_merged_window_is_late(events: Events) -> None:
    runtime, _ = run(pipeline(Session(5), emit="final"), events.docs("k/1", docs(100, 120, 101)))
    assert runtime.stats()["late_dropped"] == 1
    assert [(r["window_start"], r["window_end"], r["n"]) for r in rows(runtime)] == [(100, 105, 1)]


def test_session_merge_deletes_the_rows_it_absorbs(events: Events) -> None:
    _, updates = run(pipeline(Session(5)), events.docs("k/1", docs(100, 110, 105)))
    assert [(u.op, u.row["window_start"], u.row["window_end"]) for u in updates] == [
        ("upsert", 100, 105),
        ("upsert", 110, 115),
        ("delete", 100, 105),
        ("delete", 110, 115),
        ("upsert", 100, 115),
    ]


def test_decisions_do_not_depend_on_how_the_log_is_batched(events: Events) -> None:
    rng = random.Random(7)
    times = [rng.randrange(0, 200) + i // 2 for i in range(400)]
    stream = events.docs("k/1", docs(*times))
    for spec in (Tumbling(10), Sliding(20, 5), Session(3)):
        p = pipeline(spec, emit="final", out_of_orderness=20, allowed_lateness=5)
        whole, _ = run(p, stream, batch=len(stream))
        for size in (1, 7, 64):
            cut, _ = run(p, stream, batch=size)
            assert rows(cut) == rows(whole), (spec, size)
            assert cut.stats()["late_dropped"] == whole.stats()["late_dropped"] > 0
            assert cut.stats()["windows_fired"] == whole.stats()["windows_fired"]
            assert cut.stats()["late_updates"] == whole.stats()["late_updates"] > 0


def test_retention_drops_closed_windows_from_the_table(events: Events) -> None:
    runtime, _ = run(pipeline(retention=20), events.docs("k/1", docs(1, 15, 31)))
    # watermark 31: [0,10) ended 21 ms ago (> 20): gone; [10,20) ended 11 ms ago: kept
    assert [r["window_start"] for r in rows(runtime)] == [10, 30]


def test_retention_is_at_least_the_allowed_lateness(events: Events) -> None:
    p = pipeline(retention=0, allowed_lateness=50)
    assert p.options.retention == 50
