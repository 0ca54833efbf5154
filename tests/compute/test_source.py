"""Sources: decoding change events into records, and event times."""

from __future__ import annotations

import pytest

from compute import (
    Count,
    InvalidRecord,
    StepError,
    StreamPipeline,
    Tumbling,
    format_timestamp,
    parse_timestamp,
)
from kvdb import EventType

from .conftest import BASE, Events, rows, run


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (1586937900000, 1586937900000),
        ("1586937900000", 1586937900000),
        (1586937900000.0, 1586937900000),
        ("2020-04-15T08:05:00Z", 1586937900000),
        ("2020-04-15 08:05:00", 1586937900000),  # no zone: UTC
        ("2020-04-15T10:05:00+02:00", 1586937900000),
        ("2020-04-15T08:05:00.250Z", 1586937900250),
        ("yesterday", None),
        (None, None),
        ([1], None),
        (float("nan"), None),
    ],
)
def test_event_times_are_epoch_ms_or_iso_8601(value: object, ms: int | None) -> None:
    assert parse_timestamp(value) == ms


def test_timestamps_render_as_iso_8601_utc_with_milliseconds() -> None:
    assert format_timestamp(1586937900250) == "2020-04-15T08:05:00.250Z"
    assert format_timestamp(0) == "1970-01-01T00:00:00.000Z"


def count_per_window(**source: object) -> StreamPipeline:
    return StreamPipeline("s", ["k/.*"], **source).window(Tumbling(1000)).aggregate(n=Count())  # type: ignore[arg-type]


def test_commit_time_is_the_default_event_time(events: Events) -> None:
    stream = [events.make("k/1", {}, ts=BASE + 10), events.make("k/2", {}, ts=BASE + 1500)]
    runtime, _ = run(count_per_window(), stream)
    assert [(r["window_start"] - BASE, r["n"]) for r in rows(runtime)] == [(0, 1), (1000, 1)]


def test_events_that_are_not_records_are_counted_never_silent(events: Events) -> None:
    stream = [
        events.make("k/1", {"at": "2020-04-15T08:05:00Z"}),
        events.make("k/2", b"not json"),
        events.make("k/3", {"at": "soon"}),
        events.make("k/4", [1, 2]),
        events.make("k/5", {}),
        events.make("k/6", {"at": 1586937900000}),
    ]
    runtime, _ = run(count_per_window(event_time="at"), stream)
    stats = runtime.stats()
    assert (stats["events_seen"], stats["events_in"], stats["invalid"]) == (6, 2, 4)
    assert stats["last_invalid"] == "seq 5, key 'k/5': the event-time field 'at' is missing"
    assert [r["n"] for r in rows(runtime)] == [2]


def test_invalid_reasons(events: Events) -> None:
    for value, reason in [
        (b"{", "the value is not JSON"),
        ({"at": "x"}, "'at' is 'x', not an ISO-8601 timestamp"),
        ([1], "not a JSON object, so it has no field 'at'"),
    ]:
        runtime, _ = run(count_per_window(event_time="at"), [events.make("k/1", value)])
        assert reason in runtime.stats()["last_invalid"]


def test_decode_modes(events: Events) -> None:
    seen: list[object] = []
    for decode, expected in [("text", '{"a":1}'), ("bytes", b'{"a":1}')]:
        p = StreamPipeline("s", ["k/.*"], decode=decode).sink(seen.append)  # type: ignore[arg-type]
        run(p, [events.make("k/1", {"a": 1})])
        assert seen.pop() == expected
    p = StreamPipeline("s", ["k/.*"], decode="event", event_types=["DELETE"]).map(lambda e: e.key)
    run(p.sink(seen.append), [events.make("k/9", None, type=EventType.DELETE)])
    assert seen == ["k/9"]


def test_a_custom_decoder_may_reject_events(events: Events) -> None:
    def decode(event):  # type: ignore[no-untyped-def]
        if event.key.endswith("skip"):
            raise InvalidRecord("skipped on purpose")
        return {"key": event.key}

    p = StreamPipeline("s", ["k/.*"], decode=decode).window(Tumbling(1000)).aggregate(n=Count())
    runtime, _ = run(p, [events.make("k/skip", {}), events.make("k/1", {})])
    assert runtime.stats()["invalid"] == 1 and runtime.stats()["last_invalid"].endswith(
        "skipped on purpose"
    )


def test_a_crashing_decoder_or_time_function_is_a_step_error(events: Events) -> None:
    p = StreamPipeline("s", ["k/.*"], decode=lambda e: 1 / 0).sink(print)
    with pytest.raises(StepError, match=r"step 'source'.*decoder raised ZeroDivisionError"):
        run(p, [events.make("k/1", {})])
    p = StreamPipeline("s", ["k/.*"], event_time=lambda r: "whenever").sink(print)
    with pytest.raises(StepError, match=r"event_time function returned 'whenever'"):
        run(p, [events.make("k/1", {})])


def test_event_time_from_a_function(events: Events) -> None:
    p = count_per_window(event_time=lambda r: r["when"] * 1000)
    runtime, _ = run(p, events.docs("k/1", [{"when": 1}, {"when": 1.5}, {"when": 3}]))
    assert [(r["window_start"], r["n"]) for r in rows(runtime)] == [(1000, 2), (3000, 1)]
