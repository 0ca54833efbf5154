"""Replication benchmarks (issue 9): two real nodes on loopback, A replicating to B.

1. ``lag``: replication lag at a steady ``--rate`` (2,000) writes/s on A, and with A⇄B both
   writing ``--rate / 2`` (1,000) writes/s. A paced writer (its own process, raw keep-alive
   HTTP/1.1 on ``--connections`` (32) connections, so that durable commits, each waiting for
   its fsync, can keep the rate) PUTs ``<prefix>/<n>`` and takes the time each PUT is
   acknowledged; a subscriber on the other node (its own process, a WebSocket on
   ``/ws/changes``) takes the time each event arrives there. Lag = arrival on the other node -
   acknowledgement on the writer, per write, so it covers the sender's stream, the batch over
   HTTP, the receiver's merge and durable commit, and the fan-out to the subscriber (a few
   ms of its own). The first second is warm-up. Target: p99 <= 50 ms at 2,000 writes/s.
2. ``catchup``: B is down while ``--events`` (1,000,000) puts are written on A (1,000-op
   batches over HTTP); then B starts. From the moment B answers until A reports lag 0 for
   it (``GET /sync/status``, polled every 50 ms): events/s. Target: >= 50,000/s.
3. ``snapshot``: A holds ``--events`` (1,000,000) keys and its log keeps only the last 1,000
   (written offline, compacted), so a fresh B can only be brought up by a snapshot resync (a
   versioned scan in pages of ``--batch-size``, then the log's tail). Timed as the catch-up.
   Target: >= 100,000 keys/s.

Both nodes use durability ``full`` (the default) and each measurement starts fresh nodes.
The retry delays are short (50 ms, at most 200 ms), so B's return is noticed at once rather
than after a long backoff. Each figure is printed per run and as a median over ``--runs``.

    python bench/sync.py                              # all three
    python bench/sync.py --only catchup --events 200000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import orjson
import uvloop
import websockets
import yaml
from harness import ServerProcess, free_port, percentile, started_kvdb, summary

from kvdb import Put, Store, StoreConfig
from kvdb.config import RetentionPolicy

WARMUP_S = 1.0
SNAPSHOT_LOG = 1000  # events the snapshot benchmark's source keeps in its log
DURABILITY = "full"  # of both nodes (--durability)


# -- nodes --------------------------------------------------------------------------------------


def node_config(
    path: Path, node_id: str, peer: tuple[str, int] | None, batch_size: int, **node: Any
) -> Path:
    node.setdefault("durability", DURABILITY)
    doc: dict[str, Any] = {"node": {"id": node_id, **node}, "server": {"log_level": "warning"}}
    if peer is not None:
        target = {"node_id": peer[0], "endpoints": [f"http://127.0.0.1:{peer[1]}"]}
        doc["sync"] = [{
            "name": "bench", "targets": [target], "batch_size": batch_size,
            "retry_delay": "50ms", "max_retry_delay": "200ms",
        }]  # fmt: skip
    path.write_text(yaml.safe_dump(doc))
    return path


@contextlib.contextmanager
def started_node(
    tmp: Path, node_id: str, port: int, peer: tuple[str, int] | None, batch_size: int,
    data_dir: Path | None = None, **node: Any,
) -> Iterator[ServerProcess]:  # fmt: skip
    config = node_config(tmp / f"{node_id}.yaml", node_id, peer, batch_size, **node)
    with started_kvdb("--config", str(config), data_dir=data_dir, port=port) as server:
        yield server


def sync_target(url: str, node_id: str) -> dict[str, Any]:
    status = httpx.get(url + "/sync/status", timeout=30).json()
    return next(t for p in status["processors"] for t in p["targets"] if t["node_id"] == node_id)


def wait_caught_up(url: str, node_id: str, timeout: float = 600) -> tuple[float, dict[str, Any]]:
    """Poll the sender until its target reports lag 0; returns when (perf_counter) and the
    target's status then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        target = sync_target(url, node_id)
        if target["lag_events"] == 0 and target["state"] == "live":
            return time.perf_counter(), target
        time.sleep(0.05)
    raise RuntimeError(f"{node_id} did not catch up in {timeout} s: {target}")


# -- lag: a paced writer and a subscriber on the other node ------------------------------------


def _request(host: str, prefix: str, n: int) -> bytes:
    return b"PUT /kv/%s/%d HTTP/1.1\r\nHost: %s\r\nContent-Length: 1\r\n\r\nx" % (
        prefix.encode(), n, host.encode(),
    )  # fmt: skip


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return int(head.split(b" ", 2)[1])


async def _paced_writes(
    url: str, prefix: str, rate: float, duration: float, connections: int
) -> tuple[dict[int, int], float]:
    """``({n: acknowledged at, ns}, seconds it took)``."""
    host_port = url.removeprefix("http://")
    host, port = host_port.split(":")
    free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        free.put_nowait(await asyncio.open_connection(host, int(port)))
    acked: dict[int, int] = {}

    async def send(n: int) -> None:
        reader, writer = await free.get()
        writer.write(_request(host_port, prefix, n))
        if await _read_response(reader) == 200:
            acked[n] = time.time_ns()
        free.put_nowait((reader, writer))

    loop = asyncio.get_running_loop()
    started, sent, total = loop.time(), 0, int(rate * duration)
    pending: set[asyncio.Task[None]] = set()
    while sent < total:
        due = min(total, int((loop.time() - started) * rate) + 1)
        while sent < due:
            task = asyncio.create_task(send(sent))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
        await asyncio.sleep(0.0005)
    await asyncio.gather(*pending)
    return acked, loop.time() - started


def writer_process(
    url: str, prefix: str, rate: float, duration: float, connections: int, start: float, out: Any
) -> None:
    time.sleep(max(0.0, start - time.time()))
    out.put(uvloop.run(_paced_writes(url, prefix, rate, duration, connections)))


async def _arrivals(url: str, prefix: str, last: int, until: float, ready: Any) -> dict[int, int]:
    ws_url = url.replace("http://", "ws://") + f"/ws/changes?since=now&pattern={prefix}/.*"
    seen: dict[int, int] = {}
    async with websockets.connect(ws_url, max_size=None) as ws:
        ready.put(True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(until - time.time()):
                async for raw in ws:
                    now = time.time_ns()
                    message = orjson.loads(raw)
                    for event in message.get("events", ()):
                        n = int(event["key"].rsplit("/", 1)[1])
                        seen.setdefault(n, now)
                    if last in seen:
                        break
    return seen


def subscriber_process(
    url: str, prefix: str, last: int, until: float, ready: Any, out: Any
) -> None:
    out.put(uvloop.run(_arrivals(url, prefix, last, until, ready)))


def measure_lag(
    flows: list[tuple[str, str, str]], rate: float, duration: float, connections: int
) -> dict[str, Any]:
    """``flows``: (writer url, subscriber url, key prefix), each written at ``rate``."""
    context = multiprocessing.get_context("spawn")
    start = time.time() + 5.0
    total = int(rate * (WARMUP_S + duration))
    warm = int(rate * WARMUP_S)
    processes, channels = [], []
    for writer_url, reader_url, prefix in flows:
        ready, arrivals, acks = context.Queue(), context.Queue(), context.Queue()
        subscriber = context.Process(
            target=subscriber_process,
            args=(reader_url, prefix, total - 1, start + WARMUP_S + duration + 30, ready, arrivals),
        )
        writer = context.Process(
            target=writer_process,
            args=(writer_url, prefix, rate, WARMUP_S + duration, connections, start, acks),
        )
        processes += [subscriber, writer]
        channels.append((ready, arrivals, acks))
    for process in processes:
        process.start()
    for ready, _, _ in channels:
        ready.get(timeout=60)
    lags: list[float] = []
    missing = 0
    took = []
    for _, arrivals, acks in channels:
        seen = arrivals.get(timeout=180)
        acked, seconds = acks.get(timeout=180)
        took.append(seconds)
        for n, ack in acked.items():
            if n < warm:
                continue
            if n in seen:
                lags.append((seen[n] - ack) / 1e6)
            else:
                missing += 1
    for process in processes:
        process.join(timeout=30)
    lags.sort()
    return {
        "p50": percentile(lags, 0.50), "p99": percentile(lags, 0.99),
        "max": lags[-1] if lags else float("nan"), "timed": len(lags), "missing": missing,
        "write_rate": rate * (WARMUP_S + duration) / max(took),
    }  # fmt: skip


def bench_lag(args: argparse.Namespace) -> None:
    cases = [("A->B, A writing", args.rate, False), ("A<->B, both writing", args.rate / 2, True)]
    for name, rate, both in cases:
        print(
            f"replication lag, {name} at {rate:,.0f} writes/s per writer for {args.duration:.0f} s:"
        )
        runs = []
        for run in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp_name:
                tmp = Path(tmp_name)
                port_a, port_b = free_port(), free_port()
                back = ("a", port_a) if both else None
                with (
                    started_node(tmp, "a", port_a, ("b", port_b), args.batch_size) as a,
                    started_node(tmp, "b", port_b, back, args.batch_size) as b,
                ):
                    flows = [(a.url, b.url, "from-a")]
                    if both:
                        flows.append((b.url, a.url, "from-b"))
                    result = measure_lag(flows, rate, args.duration, args.connections)
            runs.append(result)
            print(
                f"  run {run + 1}: p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, "
                f"max {result['max']:.0f} ms over {result['timed']:,} writes "
                f"({result['missing']} never seen); writer reached {result['write_rate']:,.0f}/s"
            )
        print(f"  p50 ms: {summary([r['p50'] for r in runs], '.1f')}")
        print(f"  p99 ms: {summary([r['p99'] for r in runs], '.1f')}")
        p99 = statistics.median(r["p99"] for r in runs)
        print(f"  => p99 {p99:.1f} ms vs target <= 50 ms: {'PASS' if p99 <= 50 else 'BELOW'}")


# -- catch-up and snapshot ----------------------------------------------------------------------


async def write_events(url: str, events: int) -> None:
    value = b"v" * 100
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        for start in range(0, events, 1000):
            ops = [{"op": "put", "key": f"c/{i:08}", "value": value}
                   for i in range(start, min(events, start + 1000))]  # fmt: skip
            response = await http.post(
                "/kv/_batch", content=msgpack.packb({"ops": ops}),
                headers={"content-type": "application/msgpack"},
            )  # fmt: skip
            response.raise_for_status()


def time_resync(
    tmp: Path, args: argparse.Namespace, a_data: Path | None, **a_node: Any
) -> tuple[float, dict[str, Any], int]:
    """Start A (with ``a_data``, or write ``--events`` to it while B is down), then B; the
    seconds from B answering until A reports it caught up, A's target status, B's records."""
    port_a, port_b = free_port(), free_port()
    with started_node(tmp, "a", port_a, ("b", port_b), args.batch_size, a_data, **a_node) as a:
        if a_data is None:
            written = time.perf_counter()
            uvloop.run(write_events(a.url, args.events))
            print(
                f"    {args.events:,} events written on A in {time.perf_counter() - written:.1f} s while B is down"
            )
        with started_node(tmp, "b", port_b, None, args.batch_size) as b:
            began = time.perf_counter()
            done, target = wait_caught_up(a.url, "b")
            records = httpx.get(b.url + "/stats", timeout=30).json()["records"]
    return done - began, target, records


def fill_snapshot_source(data_dir: Path, keys: int) -> None:
    """``keys`` keys in A's store, whose log then keeps only the last ``SNAPSHOT_LOG``."""
    retention = RetentionPolicy(max_events=SNAPSHOT_LOG, hard_max_events=SNAPSHOT_LOG)
    value = b"v" * 100
    with Store(StoreConfig(data_dir=data_dir, node_id="a", retention=retention)) as store:
        for start in range(0, keys, 1000):
            store.batch_sync(
                [Put(f"s/{i:08}", value) for i in range(start, min(keys, start + 1000))]
            )
        store.compact_sync()


def bench_resync(args: argparse.Namespace, kind: str) -> None:
    what = "events" if kind == "catchup" else "keys"
    print(
        f"{kind}: {args.events:,} {what}, B brought back from {'A' + chr(39) + 's log' if kind == 'catchup' else 'a snapshot'}:"
    )
    rates = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp_name:
            tmp = Path(tmp_name)
            a_data, a_node = None, {}
            if kind == "snapshot":
                a_data = tmp / "a-data"
                filled = time.perf_counter()
                fill_snapshot_source(a_data, args.events)
                print(f"    A filled offline in {time.perf_counter() - filled:.1f} s")
                a_node = {
                    "retention": {"max_events": SNAPSHOT_LOG, "hard_max_events": SNAPSHOT_LOG}
                }
            seconds, target, records = time_resync(tmp, args, a_data, **a_node)
        rate = args.events / seconds
        rates.append(rate)
        print(
            f"  run {run + 1}: {rate:,.0f} {what}/s ({seconds:.1f} s); A sent {target['sent']:,} "
            f"items in {target['batches']:,} batches, {target['snapshots']} snapshot(s); "
            f"B holds {records:,} records"
        )
        if records != args.events:
            raise RuntimeError(f"B holds {records} records, expected {args.events}")
    target = 50_000 if kind == "catchup" else 100_000
    print(f"  {what}/s: {summary(rates)}")
    median = statistics.median(rates)
    print(
        f"  => {median:,.0f} {what}/s vs target >= {target:,}: {'PASS' if median >= target else 'BELOW'}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--only", choices=["lag", "catchup", "snapshot"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--rate", type=float, default=2000, help="writes/s (shared when both write)"
    )
    parser.add_argument("--duration", type=float, default=10, help="measured seconds per lag run")
    parser.add_argument("--connections", type=int, default=32, help="of each lag writer")
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="catch-up events, snapshot keys"
    )
    parser.add_argument("--batch-size", type=int, default=1000, help="the sync batch_size")
    parser.add_argument("--durability", default="full", choices=["full", "meta_async", "async"])
    return parser.parse_args()


def main() -> None:
    global DURABILITY
    args = parse_args()
    DURABILITY = args.durability
    benches: dict[str, Callable[[argparse.Namespace], None]] = {
        "lag": bench_lag,
        "catchup": lambda a: bench_resync(a, "catchup"),
        "snapshot": lambda a: bench_resync(a, "snapshot"),
    }
    for name, bench in benches.items():
        if args.only in (None, name):
            bench(args)
            print()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
