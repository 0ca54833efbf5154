"""External sync targets: how fast a node's changes reach JetStream, PostgreSQL and Redis.

1. ``throughput``: a node whose log holds ``--events`` (100,000) events (puts of ~30-byte
   values, 1,000-op batches, written before the sync processor exists) gets a sync processor
   with one target; the figure is events delivered per second from its start until the
   target's lag is 0 (read from the log, batches of 1,000, handshake included). Targets:
   JetStream >= 20,000 events/s; PostgreSQL and Redis >= 10,000 events/s.
2. ``latency``: a writer puts at a steady ``--rate`` (2,000) writes/s for ``--seconds`` (5)
   while the processor runs; each write's latency is from just before its put (durable, group
   committed) to the moment the target acknowledged the batch holding it (JetStream's publish
   acks, the PostgreSQL commit, the Redis script's reply). The first second is warm-up.

Everything runs in one process, as in ``kvdb serve``: the node, its sync processor, the writer.
The services are the machine's (``--nats``, ``--postgres``, ``--redis``); each run uses a
stream, schema or key prefix of its own and removes it. Figures per run and the median over
``--runs`` (3).

    python bench/targets.py
    python bench/targets.py --only jetstream --events 200000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from harness import percentile, summary

from api import Node, NodeSettings, Settings
from kvdb import ApplyResult, Put, RemoteBatch
from sync import SyncConfig, TargetConfig
from sync.protocol import Mode
from sync.targets import external_target
from sync.targets.options import JetStreamOptions, PostgresOptions, RedisOptions, TargetOptions

WARMUP_S = 1.0
KINDS = ("jetstream", "postgres", "redis")


def options_for(
    kind: str, args: argparse.Namespace
) -> tuple[TargetOptions, Callable[[], Awaitable[None]]]:
    tag = uuid.uuid4().hex[:10]
    if kind == "jetstream":
        js = JetStreamOptions(servers=(args.nats,), stream=f"KVDBBENCH_{tag}",
                              subject_prefix=f"kvdbbench{tag}")  # fmt: skip
        return js, lambda: _delete_stream(args.nats, f"KVDBBENCH_{tag}")
    if kind == "postgres":
        pg = PostgresOptions(dsn=args.postgres, schema=f"kvdbbench_{tag}")
        return pg, lambda: _drop_schema(args.postgres, pg.schema)
    redis = RedisOptions(url=args.redis, key_prefix=f"kvdbbench:{tag}:")
    return redis, lambda: _delete_prefix(args.redis, redis.key_prefix)


class Timed:
    """A target that notes when each batch it acknowledged was acknowledged."""

    def __init__(self, target: Any, on_applied: Callable[[RemoteBatch], None]) -> None:
        self._target, self._on_applied = target, on_applied
        self.node_id, self.kind = target.node_id, target.kind

    @property
    def endpoint(self) -> str | None:
        return self._target.endpoint  # type: ignore[no-any-return]

    async def handshake(self, hello: Any) -> Any:
        return await self._target.handshake(hello)

    async def apply(self, batch: RemoteBatch, mode: Mode = "log") -> ApplyResult:
        result: ApplyResult = await self._target.apply(batch, mode)
        self._on_applied(batch)
        return result

    async def check_health(self) -> bool:
        return await self._target.check_health()  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self._target.close()


async def lag_zero(node: Node, timeout: float = 600.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            target = node.sync.status()["processors"][0]["targets"][0]
            if target["lag_events"] == 0:
                return
            await asyncio.sleep(0.005)


async def throughput(kind: str, args: argparse.Namespace) -> float:
    options, cleanup = options_for(kind, args)
    with tempfile.TemporaryDirectory(prefix="bench-targets-") as tmp:
        settings = Settings(node=NodeSettings(data_dir=Path(tmp) / "a", id="a", durability="async"))
        async with Node(settings) as node:
            for start in range(0, args.events, 1000):
                count = min(1000, args.events - start)
                await node.store.batch([Put(f"t/{start + i}", b"x" * 30) for i in range(count)])
            config = TargetConfig(kind=kind, name="bench", options=options)
            began = time.perf_counter()
            await node.sync.create(SyncConfig("bench", targets=(config,)))
            await lag_zero(node)
            elapsed = time.perf_counter() - began
            await node.sync.remove("bench")
    await cleanup()
    return args.events / elapsed


async def latency(kind: str, args: argparse.Namespace) -> tuple[float, float, float]:
    """p50 and p99 put-to-target latency in ms, and the write rate reached."""
    options, cleanup = options_for(kind, args)
    sent: dict[str, float] = {}
    latencies: list[float] = []

    def applied(batch: RemoteBatch) -> None:
        now = time.perf_counter()
        for item in batch.items:
            began = sent.pop(item.key, None)
            if began is not None and began >= warm_until:
                latencies.append((now - began) * 1000)

    def factory(config: SyncConfig, target: TargetConfig) -> Any:
        return Timed(external_target(config, target), applied)

    warm_until = float("inf")
    with tempfile.TemporaryDirectory(prefix="bench-targets-") as tmp:
        settings = Settings(node=NodeSettings(data_dir=Path(tmp) / "a", id="a"))
        async with Node(settings) as node:
            node.sync.target_factory = factory
            config = TargetConfig(kind=kind, name="bench", options=options)
            await node.sync.create(SyncConfig("bench", targets=(config,)))
            await node.store.put("warm", b"1")
            await lag_zero(node)
            began = time.perf_counter()
            warm_until = began + WARMUP_S
            writes = int(args.rate * args.seconds)
            pending: set[asyncio.Task[Any]] = set()
            for n in range(writes):
                delay = began + n / args.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                key = f"lat/{n}"
                sent[key] = time.perf_counter()
                task = asyncio.create_task(node.store.put(key, b"x" * 30))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.gather(*pending)
            rate = writes / (time.perf_counter() - began)
            await lag_zero(node)
            await node.sync.remove("bench")
    await cleanup()
    ordered = sorted(latencies)
    return percentile(ordered, 0.50), percentile(ordered, 0.99), rate


# -- cleanup of what a run made -----------------------------------------------------------------


async def _delete_stream(url: str, stream: str) -> None:
    import nats

    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


async def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


async def _delete_prefix(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()


async def main(args: argparse.Namespace) -> None:
    kinds = args.only.split(",") if args.only else KINDS
    for kind in kinds:
        if "throughput" in args.figures:
            rates = []
            for run in range(args.runs):
                rates.append(await throughput(kind, args))
                print(f"{kind} throughput run {run + 1}: {rates[-1]:,.0f} events/s", flush=True)
            print(f"{kind} throughput: {summary(rates)} events/s", flush=True)
        if "latency" in args.figures:
            p50s, p99s, reached = [], [], []
            for run in range(args.runs):
                p50, p99, rate = await latency(kind, args)
                p50s.append(p50)
                p99s.append(p99)
                reached.append(rate)
                print(f"{kind} latency run {run + 1}: p50 {p50:.2f} ms, p99 {p99:.2f} ms at "
                      f"{rate:,.0f} writes/s", flush=True)  # fmt: skip
            print(f"{kind} latency at {args.rate:,} writes/s: p50 {summary(p50s, '.2f')} ms; "
                  f"p99 {summary(p99s, '.2f')} ms; writes/s {statistics.median(reached):,.0f}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated kinds: jetstream,postgres,redis")
    parser.add_argument("--figures", default="throughput,latency")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    asyncio.run(main(parser.parse_args()))
