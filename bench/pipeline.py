"""Benchmark of stream computing: windowed aggregations over change events, on one core.

What is measured (each figure the median of ``--runs`` runs, printed with every run, the
min-max range and the spread (max - min) / median, next to its target with PASS or BELOW):

a. Direct: a ``PipelineRuntime`` fed ``--events`` (1,000,000) ``ChangeEvent`` s in batches of
   1,000, as the engine feeds it, with no store in the loop. Each event's value is a JSON
   object ``{"sensor": "s<k>", "value": v, "at": <epoch ms>}``, one of ``--keys`` (1,000)
   sensors at random; event times advance 1 ms per event, some out of order. The pipeline
   decodes the JSON, takes the event time from ``at``, keys by ``sensor`` and counts per
   window (``emit="changes"``, nobody listening):
     tumbling   10 s windows                        target 150,000 events/s
     sliding    10 s windows every 2 s (5 per event)
     session    1 s gap
b. End to end: the same events committed to a store first (untimed), then a pipeline
   registered with ``StreamComputingEngine`` reads them from the change log (the stream's
   cursor catching up in 1,000-event reads), with checkpoints of state and seq in LMDB
   (durability ``full``, every checkpoint fsync'd):
     tumbling, checkpoint every 1 s (the default)   target 80,000 events/s
     tumbling, checkpoint after every batch        target 80,000 events/s
     tumbling, the same pipeline in SQL, every 1 s
   Timed from registration until the pipeline has processed the last event.

The process is pinned to one CPU (``--cpu``), so the figures are single-core figures even on a
machine with more. The load average before and after is printed: on a machine shared with
other work the figures drop, and the spread shows it. Bytewax 0.21 reached about 100,000
events/s for a keyed tumbling count on this kind of machine.

    python bench/pipeline.py                       # everything, 3 runs each
    python bench/pipeline.py --events 200000 --runs 5 --only direct
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# The editable install maps the packages as namespaces; run from anywhere, import this tree.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from changestream import ChangeStreamManager
from compute import (
    Count,
    PipelineRuntime,
    Session,
    Sliding,
    StreamComputingEngine,
    StreamPipeline,
    Tumbling,
)
from kvdb import (
    ChangeEvent,
    Durability,
    EventType,
    Put,
    RetentionPolicy,
    Store,
    StoreConfig,
)

BASE_MS = 1_700_000_000_000
BATCH = 1000


def make_values(n: int, keys: int, seed: int = 1) -> list[tuple[str, bytes]]:
    """``(key, JSON value)`` of ``n`` readings; event times 1 ms apart, 2% up to 2 s late."""
    rng = random.Random(seed)
    values = []
    for i in range(n):
        sensor = rng.randrange(keys)
        at = BASE_MS + i - (rng.randrange(2000) if rng.random() < 0.02 else 0)
        doc = {"sensor": f"s{sensor}", "value": rng.randrange(100), "at": at}
        values.append((f"readings/{sensor}/{i}", orjson.dumps(doc)))
    return values


def as_events(values: list[tuple[str, bytes]]) -> list[ChangeEvent]:
    hlc = BASE_MS << 16
    return [
        ChangeEvent(seq, EventType.INSERT, key, None, value, hlc + seq, "bench", seq)
        for seq, (key, value) in enumerate(values, 1)
    ]


def pipeline(name: str, window: Tumbling | Sliding | Session) -> StreamPipeline:
    return (
        StreamPipeline(name, ["readings/.*"], event_time="at", out_of_orderness=2000)
        .key_by("sensor")
        .window(window)
        .aggregate(n=Count())
    )


SQL = """
CREATE STREAM IF NOT EXISTS readings (sensor STRING, value BIGINT, at TIMESTAMP,
  WATERMARK FOR at AS at - INTERVAL '2' SECOND) WITH (key_pattern = 'readings/.*');
CREATE PIPELINE {name} AS SELECT sensor, window_start, window_end, COUNT(*) AS n
  FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(at), INTERVAL '10' SECONDS))
  GROUP BY sensor, window_start, window_end;
"""

WINDOWS: dict[str, Callable[[], Tumbling | Sliding | Session]] = {
    "tumbling": lambda: Tumbling(10_000),
    "sliding": lambda: Sliding(10_000, 2_000),
    "session": lambda: Session(1_000),
}


def direct_run(kind: str, events: Sequence[ChangeEvent]) -> float:
    runtime = PipelineRuntime(pipeline("bench", WINDOWS[kind]()))
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    started = time.perf_counter()
    for batch in batches:
        runtime.process(batch)
    elapsed = time.perf_counter() - started
    assert runtime.stats()["events_in"] == len(events)
    return len(events) / elapsed


def load_store(directory: Path, values: list[tuple[str, bytes]]) -> None:
    config = StoreConfig(
        data_dir=directory,
        node_id="bench",
        durability=Durability.ASYNC,
        retention=RetentionPolicy(max_events=None, max_age_ms=None, hard_max_events=None),
    )
    with Store(config) as store:
        for i in range(0, len(values), BATCH):
            store.batch_sync([Put(key, value) for key, value in values[i : i + BATCH]])


async def end_to_end_run(directory: Path, variant: str, n: int, run: int) -> float:
    config = StoreConfig(
        data_dir=directory,
        node_id="bench",
        durability=Durability.FULL,
        retention=RetentionPolicy(max_events=None, max_age_ms=None, hard_max_events=None),
    )
    with Store(config) as store:
        streams = ChangeStreamManager(store)
        await streams.start()
        interval = 0 if variant == "every batch" else 1000
        engine = StreamComputingEngine(store, streams, checkpoint_interval_ms=interval)
        await engine.start()
        name = f"bench_{variant.replace(' ', '_')}_{run}"
        started = time.perf_counter()
        if variant == "sql":
            await engine.sql.execute(SQL.format(name=name))
            processor = engine.get(name)
        else:
            processor = await engine.register(pipeline(name, Tumbling(10_000)))
        while processor.runtime.seq < store.last_seq:
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - started
        checkpoints = processor.checkpoints
        assert processor.runtime.events_in == n, processor.stats()
        await engine.remove(name)
        await engine.stop()
        await streams.stop()
    if variant == "every batch":
        assert checkpoints >= n // BATCH, checkpoints
    return n / elapsed


def report(label: str, rates: list[float], target: int | None) -> None:
    median = statistics.median(rates)
    spread = (max(rates) - min(rates)) / median
    verdict = ""
    if target is not None:
        verdict = f"  target {target:,}: {'PASS' if median >= target else 'BELOW'}"
    runs = ", ".join(f"{rate:,.0f}" for rate in rates)
    print(
        f"{label:<44} {median:>10,.0f} events/s  (runs {runs}; "
        f"{min(rates):,.0f}-{max(rates):,.0f}, spread {spread:.0%}){verdict}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the first)")
    parser.add_argument("--only", choices=("direct", "end-to-end"), default=None)
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        cpu = args.cpu if args.cpu is not None else min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        pinned = f"pinned to CPU {cpu}"
    else:
        pinned = "not pinned (no sched_setaffinity here)"
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{pinned}; load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{args.events:,} events, {args.keys:,} keys, batches of {BATCH:,}\n", flush=True)
    values = make_values(args.events, args.keys)

    if args.only in (None, "direct"):
        events = as_events(values)
        for kind, target in (("tumbling", 150_000), ("sliding", None), ("session", None)):
            direct_run(kind, events[: min(50_000, len(events))])  # warm-up
            rates = [direct_run(kind, events) for _ in range(args.runs)]
            report(f"direct, keyed {kind} count", rates, target)
        del events

    if args.only in (None, "end-to-end"):
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
            directory = Path(tmp) / "data"
            load_store(directory, values)
            for variant, label, target in (
                ("every 1 s", "end to end, tumbling, checkpoint every 1 s", 80_000),
                ("every batch", "end to end, tumbling, checkpoint every batch", 80_000),
                ("sql", "end to end, tumbling in SQL, checkpoint 1 s", None),
            ):
                rates = [
                    asyncio.run(end_to_end_run(directory, variant, args.events, run))
                    for run in range(args.runs)
                ]
                report(label, rates, target)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
