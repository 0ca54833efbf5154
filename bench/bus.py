"""Event-bus benchmark: throughput in-process, and put-to-handler latency through a server.

What is measured:

a. Throughput (in-process, target 100,000 events/s). A fresh store (durability ``full``
   unless ``--durability`` says otherwise), its change-stream manager and an ``EventBus`` with
   10 routes ``bench/r<i>/.*``, each to its own function handler (``async def`` by default;
   ``--sync`` for plain functions, which run in the handlers' threads). One writer commits
   ``--events`` events as atomic batches of ``--batch`` puts (100-byte values, keys spread
   round-robin over the routes, so every event is matched against all 10 routes and goes to
   exactly one handler). The clock runs from the first batch submitted until every handler
   has counted its last event: writes, commit hook, per-handler cursors, routing and handler
   calls, all on the same event loop and writer thread they use in a server. The writes alone
   (the same batches with no bus) are timed too, for comparison. ``--fan-out`` makes every
   route match every key instead (10 deliveries per event; reported as deliveries/s).
b. Latency (through a running server). ``kvdb serve`` in a child process (durability full)
   with a ``webhook`` handler (``flush_interval: 0``) routed ``lat/.*`` to an HTTP receiver in
   this process. Sequential ``PUT /kv/lat/<n>`` at ``--rate`` per second from one keep-alive
   connection; a put's latency is from just before its request is sent to the moment the
   receiver has its event (one process, one monotonic clock). Reported: p50 and p99, and the
   PUT round trip alone for comparison.

Each figure is the median of ``--runs`` runs, printed with every run, the min-max range and
the spread (max - min) / median. The machine's load average is printed with each run: other
work on a shared 2-core machine slows runs down, never speeds them up.

    python bench/bus.py                      # both
    python bench/bus.py --only throughput --sync
    python bench/bus.py --only latency --rate 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import uvloop
from harness import started_kvdb

from changestream import ChangeStreamManager
from eventbus import BusSetup, EventBus, EventRoute, FunctionEventHandler
from kvdb import ChangeEvent, Durability, Put, Store, StoreConfig

THROUGHPUT_TARGET = 100_000  # events/s through 10 routes to function handlers
ROUTES = 10


@dataclass(frozen=True)
class ThroughputRun:
    events_per_s: float  # through the bus (deliveries/s with --fan-out)
    writes_per_s: float  # the same writes with no bus
    load: float


@dataclass(frozen=True)
class LatencyRun:
    p50_ms: float
    p99_ms: float
    put_p50_ms: float
    load: float


def summary(values: list[float], unit: str = "") -> str:
    median = statistics.median(values)
    spread = (max(values) - min(values)) / median if median else 0.0

    def show(value: float) -> str:
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"

    runs = ", ".join(show(v) for v in values)
    return (
        f"median {show(median)}{unit} (runs: {runs}; range {show(min(values))}-"
        f"{show(max(values))}, spread {spread:.1%}, n={len(values)})"
    )


def load_average() -> float:
    return os.getloadavg()[0]


# -- a. throughput ------------------------------------------------------------------------------


def make_batches(args: argparse.Namespace, prefix: str) -> list[list[Put]]:
    value = os.urandom(100)
    count = args.events // args.batch
    return [
        [Put(f"bench/r{i % ROUTES}/{prefix}{b}-{i}", value) for i in range(args.batch)]
        for b in range(count)
    ]


def open_store(path: Path, args: argparse.Namespace) -> Store:
    return Store(StoreConfig(data_dir=path, node_id="bench", durability=args.durability))


async def write_all(store: Store, batches: list[list[Put]]) -> None:
    for batch in batches:
        await store.batch(batch)


async def time_writes_alone(args: argparse.Namespace, path: Path) -> float:
    batches = make_batches(args, "w")
    with open_store(path, args) as store:
        started = time.perf_counter()
        await write_all(store, batches)
        return len(batches) * args.batch / (time.perf_counter() - started)


def counting_handlers(
    per_handler: int, done: asyncio.Event, sync: bool
) -> tuple[list[FunctionEventHandler], list[int]]:
    """Handlers that count their events; ``done`` is set once each has seen ``per_handler``."""
    counts = [0] * ROUTES
    unfinished = [ROUTES]
    loop = asyncio.get_running_loop()

    def finished() -> None:
        unfinished[0] -= 1
        if unfinished[0] == 0:
            done.set()

    def make(i: int) -> FunctionEventHandler:
        if sync:  # runs in the handler's own thread: only this handler touches counts[i]

            def on_event(event: ChangeEvent) -> None:
                counts[i] += 1
                if counts[i] == per_handler:
                    loop.call_soon_threadsafe(finished)

            return FunctionEventHandler(f"h{i}", on_event)

        async def on_event_async(event: ChangeEvent) -> None:
            counts[i] += 1
            if counts[i] == per_handler:
                finished()

        return FunctionEventHandler(f"h{i}", on_event_async)

    return [make(i) for i in range(ROUTES)], counts


async def time_bus(args: argparse.Namespace, path: Path) -> float:
    batches = make_batches(args, "b")
    events = len(batches) * args.batch
    deliveries = events * (ROUTES if args.fan_out else 1)
    done = asyncio.Event()
    handlers, counts = counting_handlers(deliveries // ROUTES, done, args.sync)
    routes = tuple(
        EventRoute(
            f"r{i}",
            key_patterns=("bench/.*",) if args.fan_out else (f"bench/r{i}/.*",),
            handler_names=(f"h{i}",),
        )
        for i in range(ROUTES)
    )
    with open_store(path, args) as store:
        streams = ChangeStreamManager(store)
        await streams.start()
        bus = EventBus(store, streams)
        await bus.start(BusSetup(handlers=tuple(handlers), routes=routes))
        try:
            started = time.perf_counter()
            await write_all(store, batches)
            async with asyncio.timeout(600):
                await done.wait()
            elapsed = time.perf_counter() - started
        finally:
            await bus.stop()
            await streams.stop()
    if sum(counts) != deliveries:
        raise RuntimeError(f"{sum(counts)} deliveries instead of {deliveries}")
    return deliveries / elapsed


def bench_throughput(args: argparse.Namespace) -> None:
    if args.batch % ROUTES or args.events % args.batch:
        raise SystemExit(f"--batch must be a multiple of {ROUTES}, --events of --batch")
    kind = "plain functions (threads)" if args.sync else "async functions"
    what = "deliveries/s, every route matching every key" if args.fan_out else "events/s"
    print(
        f"\na. throughput: {args.events:,} events in batches of {args.batch}, {ROUTES} routes to "
        f"{ROUTES} {kind}, durability {args.durability}; {what}"
    )
    runs: list[ThroughputRun] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="kvdb-bench-bus-") as tmp:
            writes = uvloop.run(time_writes_alone(args, Path(tmp) / "w"))
            load = load_average()
            rate = uvloop.run(time_bus(args, Path(tmp) / "b"))
        runs.append(ThroughputRun(rate, writes, load))
        print(
            f"  run {run + 1}: {rate:,.0f} {what.split(',')[0]} through the bus; "
            f"writes alone {writes:,.0f}/s; load average {load:.2f}"
        )
    median = statistics.median(r.events_per_s for r in runs)
    print(f"  through the bus: {summary([r.events_per_s for r in runs])}")
    print(f"  writes alone:    {summary([r.writes_per_s for r in runs])}")
    if not args.fan_out:
        verdict = "PASS" if median >= THROUGHPUT_TARGET else "BELOW"
        print(f"  => {median:,.0f} events/s vs target {THROUGHPUT_TARGET:,}: {verdict}")


# -- b. latency through a server ----------------------------------------------------------------


class Receiver:
    """The webhook's receiver: notes when each key's event arrives."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                now = time.perf_counter()
                with receiver.changed:
                    for event in json.loads(body)["events"]:
                        receiver.arrived.setdefault(event["key"], now)
                    receiver.changed.notify_all()
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, keys: list[str], timeout: float = 60) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: all(k in self.arrived for k in keys), timeout):
                raise RuntimeError("the handler did not receive every event in time")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_config(tmp: Path, receiver: Receiver) -> Path:
    config = tmp / "kvdb.yaml"
    config.write_text(
        f"""
handlers:
  - name: hook
    webhook: {{url: "{receiver.url}"}}
    flush_interval: 0ms
routes:
  - {{name: lat, key_patterns: ["lat/.*"], handler_names: [hook]}}
"""
    )
    return config


def measure_latency(
    url: str, receiver: Receiver, prefix: str, puts: int, rate: float
) -> LatencyRun:
    sent: dict[str, float] = {}
    put_times: list[float] = []
    interval = 1 / rate
    load = load_average()
    with httpx.Client(base_url=url) as http:
        next_at = time.perf_counter()
        for n in range(puts):
            key = f"lat/{prefix}/{n}"
            now = time.perf_counter()
            if now < next_at:
                time.sleep(next_at - now)
            next_at += interval
            sent[key] = time.perf_counter()
            http.put(f"/kv/{key}", content=b'{"n": 1}').raise_for_status()
            put_times.append(time.perf_counter() - sent[key])
    receiver.wait_for(list(sent))
    latencies = sorted(1000 * (receiver.arrived[k] - t) for k, t in sent.items())
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return LatencyRun(quantiles[49], quantiles[98], 1000 * statistics.median(put_times), load)


def bench_latency(args: argparse.Namespace) -> None:
    print(
        f"\nb. put-to-handler latency through a server: {args.puts:,} sequential PUTs at "
        f"{args.rate:g}/s per run, webhook handler (flush_interval 0) to a local receiver, "
        "durability full"
    )
    receiver = Receiver()
    runs = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="kvdb-bench-bus-") as tmp,
            started_kvdb("--config", str(write_config(Path(tmp), receiver))) as server,
        ):
            measure_latency(server.url, receiver, "warm", min(200, args.puts), args.rate)
            for run in range(args.runs):
                result = measure_latency(server.url, receiver, f"r{run}", args.puts, args.rate)
                runs.append(result)
                print(
                    f"  run {run + 1}: p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms "
                    f"(PUT alone p50 {result.put_p50_ms:.2f} ms); load average {result.load:.2f}"
                )
    finally:
        receiver.close()
    print(f"  p50: {summary([r.p50_ms for r in runs], ' ms')}")
    print(f"  p99: {summary([r.p99_ms for r in runs], ' ms')}")
    print(f"  PUT round trip alone, p50: {summary([r.put_p50_ms for r in runs], ' ms')}")


# -- main ---------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Event-bus benchmark (see the module docstring for the method).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--events", type=int, default=200_000, help="events per throughput run")
    parser.add_argument("--batch", type=int, default=1000, help="puts per atomic batch")
    parser.add_argument("--sync", action="store_true", help="plain (threaded) handler functions")
    parser.add_argument("--fan-out", action="store_true", help="every route matches every key")
    parser.add_argument(
        "--durability", type=Durability, choices=list(Durability), default=Durability.FULL
    )
    parser.add_argument("--puts", type=int, default=1000, help="PUTs per latency run")
    parser.add_argument("--rate", type=float, default=200, help="PUTs per second (latency)")
    parser.add_argument("--only", choices=["throughput", "latency"], help="run just one")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    version = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"kvdb event-bus benchmark: python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"uvloop, code {version or 'unknown'}, load average now {load_average():.2f}"
    )
    steps: list[Callable[[argparse.Namespace], None]] = []
    if args.only in (None, "throughput"):
        steps.append(bench_throughput)
    if args.only in (None, "latency"):
        steps.append(bench_latency)
    for step in steps:
        step(args)


if __name__ == "__main__":
    main()
