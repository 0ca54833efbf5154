"""Checkpointed state: a pipeline restored from any checkpoint and fed the rest of the log
ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import random

import pytest

from compute import (
    Avg,
    Count,
    Max,
    PipelineRuntime,
    Session,
    Sliding,
    StreamPipeline,
    Sum,
    Tumbling,
)
from kvdb import ChangeEvent

from .conftest import Events, rows, run


def keyed(spec, name="p", emit="changes") -> StreamPipeline:  # type: ignore[no-untyped-def]
    return (
        StreamPipeline(
            name,
            ["a/.*"],
            event_time="t",
            out_of_orderness=15,
            allowed_lateness=10,
            emit=emit,
            retention=60,
        )
        .filter(lambda r: r["v"] % 7 != 0)
        .key_by("user")
        .window(spec)
        .aggregate(n=Count(), total=Sum("v"), top=Max("v"), mean=Avg("v"))
    )


def window_join(emit: str = "changes") -> StreamPipeline:
    right = (
        StreamPipeline("b", ["b/.*"], event_time="t", out_of_orderness=15)
        .key_by("user")
        .window(Tumbling(20))
        .aggregate(clicks=Count())
    )
    return keyed(Tumbling(20), name="a", emit=emit).join(right, how="full", name="joined")


def interval_join() -> StreamPipeline:
    left = StreamPipeline("a", ["a/.*"], event_time="t", out_of_orderness=15).key_by("user")
    right = StreamPipeline("b", ["b/.*"], event_time="t").key_by("user")
    return (
        left.interval_join(right, lower=-5, upper=5, select=lambda a, b: a["v"] + b["v"])
        .window(Tumbling(50))
        .aggregate(pairs=Count(), total=Sum())
    )


PIPELINES = {
    "tumbling": lambda: keyed(Tumbling(20)),
    "tumbling-final": lambda: keyed(Tumbling(20), emit="final"),
    "sliding": lambda: keyed(Sliding(30, 10)),
    "session": lambda: keyed(Session(4)),
    "session-final": lambda: keyed(Session(4), emit="final"),
    "window-join": window_join,
    "window-join-final": lambda: window_join("final"),
    "interval-join": interval_join,
}


def workload(events: Events, n: int = 600, seed: int = 3) -> list[ChangeEvent]:
    rng = random.Random(seed)
    stream = []
    for i in range(n):
        prefix = "a" if rng.random() < 0.7 else "b"
        t = i // 2 + rng.randrange(-70, 5)  # out of order, some beyond the allowed lateness
        doc = {"user": f"u{rng.randrange(5)}", "t": t, "v": rng.randrange(100)}
        stream.append(events.make(f"{prefix}/{i}", doc))
    return stream


class Disk:
    """What LMDB holds: records as the checkpoints wrote them."""

    def __init__(self) -> None:
        self.records: dict[str, bytes] = {}

    def checkpoint(self, runtime: PipelineRuntime) -> None:
        puts, deletes = runtime.checkpoint_records()
        for name in deletes:
            self.records.pop(name, None)
        self.records.update(puts)


@pytest.mark.parametrize("kind", sorted(PIPELINES))
def test_restart_from_any_checkpoint_equals_an_uninterrupted_run(kind: str, events: Events) -> None:
    stream = workload(events)
    whole, _ = run(PIPELINES[kind](), stream, batch=50)
    expected_rows, expected_stats = rows(whole), whole.stats()
    assert expected_rows and expected_stats["late_dropped"] > 0
    rng = random.Random(kind)
    for _ in range(5):
        disk = Disk()
        runtime = PipelineRuntime(PIPELINES[kind]())
        position = 0
        crash_at = rng.randrange(1, len(stream))
        while position < crash_at:  # batches of any size, a checkpoint now and then
            size = rng.randrange(1, 80)
            runtime.process(stream[position : min(position + size, crash_at)])
            position = min(position + size, crash_at)
            if rng.random() < 0.4:
                disk.checkpoint(runtime)
        # the crash loses everything since the last checkpoint; the stream redelivers from a
        # little before it (at least once), and the runtime skips what it has applied
        restored = PipelineRuntime(PIPELINES[kind]())
        if disk.records:
            restored.restore(disk.records)
        resume = max(0, restored.seq - rng.randrange(0, 30))
        for start in range(resume, len(stream), 37):
            restored.process(stream[start : start + 37])
        assert rows(restored) == expected_rows
        assert restored.stats() == expected_stats


def test_a_checkpoint_writes_only_what_changed(events: Events) -> None:
    runtime = PipelineRuntime(keyed(Tumbling(20)))
    runtime.process(events.docs("a/1", [{"user": "u", "t": t, "v": 1} for t in (1, 2, 25)]))
    first, _ = runtime.checkpoint_records()
    assert sorted(first) == ["meta", "op/aggregate/w/0", "op/aggregate/w/20"]
    runtime.process(events.docs("a/1", [{"user": "u", "t": 26, "v": 1}]))
    second, _ = runtime.checkpoint_records()
    assert sorted(second) == ["meta", "op/aggregate/w/20"]
    runtime.process(events.docs("a/1", [{"user": "u", "t": 200, "v": 1}]))  # retention: 0 goes
    _, deleted = runtime.checkpoint_records()
    assert {"op/aggregate/w/0", "op/aggregate/w/20"} <= deleted


def test_the_fingerprint_follows_the_definition_not_the_name() -> None:
    assert keyed(Tumbling(20)).fingerprint() == keyed(Tumbling(20), name="other").fingerprint()
    assert keyed(Tumbling(20)).fingerprint() != keyed(Tumbling(30)).fingerprint()
    versioned = keyed(Tumbling(20)).with_options(version="2")
    assert versioned.fingerprint() != keyed(Tumbling(20)).fingerprint()


def test_restored_state_is_what_was_saved(events: Events) -> None:
    runtime = PipelineRuntime(keyed(Session(4)))
    runtime.process(workload(events, 100))
    records, _ = runtime.checkpoint_records()
    copy = PipelineRuntime(keyed(Session(4)))
    copy.restore(records)
    assert rows(copy) == rows(runtime)
    assert copy.stats() == runtime.stats()
    assert PipelineRuntime.stored_fingerprint(records) == runtime.fingerprint
