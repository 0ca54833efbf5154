"""In-process benchmark of ``kvdb.Store`` writes through group commit.

What is measured (durability "full" unless ``--durability`` says otherwise, so every commit
is fsync'd before any caller is answered):

a. Single puts: ``--tasks`` (64) asyncio tasks on uvloop, each awaiting
   ``store.put(key, value)`` in a loop with its own distinct keys and 100-byte values. The
   writer thread group-commits whatever is queued, so one fsync serves many tasks. Reported:
   puts/s, the mean commit group size and the mean commit latency (both from
   ``store.stats().writer``, counting only the timed puts). Target: 100,000 puts/s.
   Each run also splits the wall time per group into the writer's commit (apply + LMDB commit
   with fsync) and the rest (the event loop resolving the group's futures and the tasks
   submitting their next puts, while the writer waits), and first times a "disk probe": the
   same-shaped group committed in bare py-lmdb, the floor the disk sets without kvdb's Python.
   On a shared virtual machine fsync latency and CPU speed drift from minute to minute; the
   probe and the split show which of the two moved when a run is slow.
b. Atomic batches: one caller awaiting ``store.batch([Put(...)] * 1000)`` in a loop, each
   batch its own transaction and fsync. Reported: keys/s. Target: 300,000 keys/s.

How: every run opens a fresh store in a temporary directory (removed afterwards), does a short
untimed warm-up, then times the writes. Keys and ``Put`` objects are built before the clock
starts, so the timed region holds only store calls. Keys are distinct, never rewritten:

* ``counter`` (default): ``bench/{task}/{i}`` with decimal ``i``, the natural shape of
  per-writer keys; within one task they arrive nearly (not exactly) in byte order.
* ``random``: ``bench/{32 random hex digits}``, scattered over the whole B-tree, LMDB's worst
  case. Both are reported with their name; neither is the "real" number alone.

Each figure is the median of ``--runs`` runs (default 5), printed with every run, its min-max
range and the spread (max - min) / median, next to its target with PASS or BELOW. Each run
also prints the CPU the rest of the machine used meanwhile (from /proc/stat, minus this
process) and flags the run as suspect above 0.3 core: another program competed with it.

    python bench/store.py                      # both benchmarks, counter keys
    python bench/store.py --key-pattern random
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import secrets
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import lmdb
import uvloop
from harness import summary

import kvdb
from kvdb import Durability, Put, Store, StoreConfig

T = TypeVar("T")

PUT_TARGET = 100_000  # puts/s, durable single puts from 64 tasks
BATCH_TARGET = 300_000  # keys/s, durable 1,000-op batches
WARMUP_PUTS_PER_TASK = 100
WARMUP_BATCHES = 3
BUSY_WARNING_CORES = 0.3
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class PutRun:
    puts_per_s: float
    mean_group: float  # tasks per commit
    mean_commit_ms: float  # writer: begin .. fsync'd commit, per group
    cycle_ms: float  # wall time per group: commit + answering and resubmitting on the loop
    raw_commit_ms: float  # the disk probe: same-shaped group in bare LMDB, median


@dataclass(frozen=True)
class BatchRun:
    keys_per_s: float
    mean_commit_ms: float


# -- keys ---------------------------------------------------------------------------------------


def make_keys(pattern: str, prefix: str, count: int) -> list[str]:
    """``count`` distinct keys under ``prefix`` in the given pattern (see the docstring)."""
    if pattern == "counter":
        return [f"{prefix}/{i}" for i in range(count)]
    return [f"bench/{secrets.token_hex(16)}" for _ in range(count)]


# -- the disk probe ---------------------------------------------------------------------------


def probe_raw_commit_ms(
    path: Path, durability: Durability, group: int, pattern: str, commits: int = 300
) -> float:
    """Median time to commit a group of ``group`` puts (keys in the benchmark's pattern, each
    with a change-log append, as kvdb writes them) in bare py-lmdb with the store's sync
    flags: the floor this disk sets per group, without any of kvdb's Python. fsync latency on
    shared virtual disks drifts, and this shows how much of a run's figure is the disk's."""
    env = lmdb.open(
        str(path),
        map_size=1 << 30,
        max_dbs=2,
        sync=durability is not Durability.ASYNC,
        metasync=durability is Durability.FULL,
    )
    data, log = env.open_db(b"data"), env.open_db(b"log")
    record = os.urandom(130)
    times = []
    try:
        for g in range(commits):
            started = time.perf_counter()
            with env.begin(write=True) as txn:
                for i in range(group):
                    key = f"probe/{i}/{g}" if pattern == "counter" else secrets.token_hex(16)
                    txn.put(key.encode(), record, db=data)
                    txn.put((g * group + i).to_bytes(8, "big"), record, db=log, append=True)
            times.append(time.perf_counter() - started)
    finally:
        env.close()
    return 1000 * statistics.median(times)


# -- the benchmarks -----------------------------------------------------------------------------


def open_store(data_dir: Path, durability: Durability) -> Store:
    return Store(StoreConfig(data_dir=data_dir, durability=durability))


async def put_loop(store: Store, keys: Sequence[str], value: bytes) -> None:
    for key in keys:
        await store.put(key, value)


async def run_puts(args: argparse.Namespace, data_dir: Path) -> PutRun:
    value = os.urandom(args.value_size)
    warmup = [
        make_keys(args.key_pattern, f"warm/{t}", WARMUP_PUTS_PER_TASK) for t in range(args.tasks)
    ]
    keys = [make_keys(args.key_pattern, f"bench/{t}", args.puts) for t in range(args.tasks)]
    raw_commit_ms = probe_raw_commit_ms(
        data_dir.with_name("probe"), args.durability, args.tasks, args.key_pattern
    )
    with open_store(data_dir, args.durability) as store:
        await asyncio.gather(*(put_loop(store, k, value) for k in warmup))
        writer = store.stats().writer  # live counters: read them before and after
        commits, tasks, seconds = writer.commits, writer.tasks, writer.commit_seconds.sum
        started = time.perf_counter()
        await asyncio.gather(*(put_loop(store, k, value) for k in keys))
        elapsed = time.perf_counter() - started
        commits, tasks = writer.commits - commits, writer.tasks - tasks
        seconds = writer.commit_seconds.sum - seconds
    return PutRun(
        tasks / elapsed,
        tasks / commits,
        1000 * seconds / commits,
        1000 * elapsed / commits,
        raw_commit_ms,
    )


async def run_batches(args: argparse.Namespace, data_dir: Path) -> BatchRun:
    value = os.urandom(args.value_size)

    def batches(prefix: str, count: int) -> list[list[Put]]:
        return [
            [Put(key, value) for key in make_keys(args.key_pattern, f"{prefix}/{b}", args.size)]
            for b in range(count)
        ]

    warmup, timed = batches("warm", WARMUP_BATCHES), batches("bench", args.batches)
    with open_store(data_dir, args.durability) as store:
        for ops in warmup:
            await store.batch(ops)
        writer = store.stats().writer  # live counters: read them before and after
        commits, commit_s = writer.commits, writer.commit_seconds.sum
        started = time.perf_counter()
        for ops in timed:
            await store.batch(ops)
        elapsed = time.perf_counter() - started
        commits, commit_s = writer.commits - commits, writer.commit_seconds.sum - commit_s
    return BatchRun(args.batches * args.size / elapsed, 1000 * commit_s / commits)


def repeat(
    runs: int,
    loop: str,
    bench: Callable[[Path], Coroutine[Any, Any, T]],
    describe: Callable[[T], str],
) -> list[T]:
    """Run ``bench`` ``runs`` times, each on a fresh store in a fresh temporary directory,
    and print what the rest of the machine used meanwhile (a busy neighbour skews a run)."""
    results = []
    suspect = 0
    for number in range(1, runs + 1):
        busy, own, started = machine_busy_s(), process_cpu_s(), time.monotonic()
        with tempfile.TemporaryDirectory(prefix="kvdb-bench-") as tmp:
            result = run_on_loop(loop, bench(Path(tmp) / "data"))
        others = (machine_busy_s() - busy) - (process_cpu_s() - own)
        rest = max(0.0, others / (time.monotonic() - started))
        print(
            f"  run {number}: {describe(result)}\n"
            f"         rest of the machine (kernel threads, other processes): {rest:.2f} cores"
            f"{'  <- busy: this run is suspect' if rest > BUSY_WARNING_CORES else ''}",
            flush=True,
        )
        results.append(result)
        suspect += rest > BUSY_WARNING_CORES
    if suspect:
        print(
            f"  WARNING: in {suspect} of {runs} runs something else used more than "
            f"{BUSY_WARNING_CORES} core: rerun on a quiet machine before trusting them"
        )
    return results


def machine_busy_s() -> float:
    """CPU-seconds all CPUs spent on anything but idle and iowait since boot (/proc/stat)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLOCK_TICKS


def process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_on_loop(loop: str, coro: Coroutine[Any, Any, T]) -> T:
    return uvloop.run(coro) if loop == "uvloop" else asyncio.run(coro)


# -- reporting ----------------------------------------------------------------------------------


def verdict(median: float, target: float, unit: str) -> str:
    status = "PASS" if median >= target else "BELOW"
    return f"{median:,.0f} {unit} vs target >= {target:,.0f} {unit}: {status}"


def bench_puts(args: argparse.Namespace) -> None:
    print(
        f"\n[a] single puts (durability={args.durability}): {args.tasks} asyncio tasks x "
        f"{args.puts} puts, {args.value_size}-byte values, {args.key_pattern} keys"
    )
    results = repeat(
        args.runs,
        args.loop,
        lambda d: run_puts(args, d),
        lambda r: (
            f"{r.puts_per_s:,.0f} puts/s; per group of {r.mean_group:.1f} puts: "
            f"{r.cycle_ms:.3f} ms = commit {r.mean_commit_ms:.3f} (writer thread) + "
            f"{r.cycle_ms - r.mean_commit_ms:.3f} (event loop); disk probe "
            f"{r.raw_commit_ms:.3f} ms"
        ),
    )
    rates = [r.puts_per_s for r in results]
    group = statistics.median(r.mean_group for r in results)
    commit = statistics.median(r.mean_commit_ms for r in results)
    raw_commit = statistics.median(r.raw_commit_ms for r in results)
    print(f"  puts/s: {summary(rates)}")
    print(f"  mean commit group size: {group:.1f} puts (median of runs)")
    print(
        f"  mean commit latency: {commit:.3f} ms (median of runs; apply + LMDB commit with "
        "fsync, in the writer thread)"
    )
    print(
        f"  disk probe: a {args.tasks}-put group commits in {raw_commit:.3f} ms in bare py-lmdb "
        "(median of runs): the floor this disk sets, without kvdb's Python"
    )
    print(f"  => {verdict(statistics.median(rates), PUT_TARGET, 'puts/s')}")


def bench_batches(args: argparse.Namespace) -> None:
    print(
        f"\n[b] atomic batches (durability={args.durability}): 1 caller x {args.batches} "
        f"batches of {args.size} puts, {args.value_size}-byte values, {args.key_pattern} keys"
    )
    results = repeat(
        args.runs,
        args.loop,
        lambda d: run_batches(args, d),
        lambda r: f"{r.keys_per_s:,.0f} keys/s, mean commit {r.mean_commit_ms:.3f} ms",
    )
    rates = [r.keys_per_s for r in results]
    print(f"  keys/s: {summary(rates)}")
    print(f"  => {verdict(statistics.median(rates), BATCH_TARGET, 'keys/s')}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="In-process kvdb.Store benchmark: durable group-committed puts and "
        "atomic batches (see the module docstring for the method).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per benchmark (median)")
    parser.add_argument("--tasks", type=int, default=64, help="concurrent put tasks")
    parser.add_argument("--puts", type=int, default=3000, help="timed puts per task")
    parser.add_argument("--batches", type=int, default=200, help="timed batches per run")
    parser.add_argument("--size", type=int, default=1000, help="puts per batch")
    parser.add_argument("--value-size", type=int, default=100, help="bytes per value")
    parser.add_argument(
        "--key-pattern", choices=["counter", "random"], default="counter", help="see docstring"
    )
    parser.add_argument(
        "--durability",
        type=Durability,
        choices=list(Durability),
        default=Durability.FULL,
        help="store durability (the targets are for full)",
    )
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--only", choices=["puts", "batches"], help="run just one benchmark")
    return parser.parse_args()


def code_version() -> str:
    """Where ``kvdb`` was imported from and its ``git describe`` (``-dirty``: local changes)."""
    where = Path(kvdb.__file__).resolve().parent.parent
    done = subprocess.run(
        ["git", "-C", str(where), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"{where}: {done.stdout.strip() or 'not a git checkout'}"


def main() -> None:
    args = parse_args()
    print(
        f"kvdb.Store benchmark: durability={args.durability}, loop={args.loop}, "
        f"python {platform.python_version()}, lmdb {lmdb.__version__}, "
        f"{os.cpu_count()} CPUs, data in {tempfile.gettempdir()}\n"
        f"code: {code_version()}"
    )
    if args.only in (None, "puts"):
        bench_puts(args)
    if args.only in (None, "batches"):
        bench_batches(args)


if __name__ == "__main__":
    main()
