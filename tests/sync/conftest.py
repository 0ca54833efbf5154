"""Fixtures of the sync tests: a node's store with a short log, and the external targets'
options naming a stream, schema or key prefix of the test's own, removed afterwards (the
services are the machine's: tests/services.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kvdb import RetentionPolicy, Store, StoreConfig
from sync.targets.options import JetStreamOptions, PostgresOptions, RedisOptions, TargetOptions
from tests.services import (
    NATS_URL,
    PG_DSN,
    REDIS_URL,
    delete_stream,
    drop_schema,
    redis_delete_prefix,
    unique,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """Node ``a``'s store, whose log keeps 5 events once compacted (by the test, on demand)."""
    retention = RetentionPolicy(max_events=5, compaction_interval_ms=3_600_000)
    config = StoreConfig(data_dir=tmp_path / "a", node_id="a", retention=retention)
    with Store(config) as opened:
        yield opened


def external_options(kind: str) -> tuple[TargetOptions, Callable[[], Awaitable[None]]]:
    """Options of a ``kind`` target of the test's own, and what removes what it made."""
    if kind == "jetstream":
        stream = unique("KVDBTEST_")
        js = JetStreamOptions(servers=(NATS_URL,), stream=stream,
                              subject_prefix=unique("kvdbtest"), storage="memory")  # fmt: skip
        return js, lambda: delete_stream(NATS_URL, stream)
    if kind == "postgres":
        pg = PostgresOptions(dsn=PG_DSN, schema=unique("kvdbtest_"))
        return pg, lambda: drop_schema(PG_DSN, pg.schema)
    prefix = unique("kvdbtest:") + ":"
    return RedisOptions(url=REDIS_URL, key_prefix=prefix), lambda: redis_delete_prefix(
        REDIS_URL, prefix
    )


@contextlib.asynccontextmanager
async def external(kind: str) -> AsyncIterator[Any]:
    """The options of a ``kind`` target of the test's own, removed afterwards."""
    options, cleanup = external_options(kind)
    try:
        yield options
    finally:
        await cleanup()


@pytest.fixture
async def jetstream_options() -> AsyncIterator[JetStreamOptions]:
    async with external("jetstream") as options:
        yield options


@pytest.fixture
async def postgres_options() -> AsyncIterator[PostgresOptions]:
    async with external("postgres") as options:
        yield options


@pytest.fixture
async def redis_options() -> AsyncIterator[RedisOptions]:
    async with external("redis") as options:
        yield options
