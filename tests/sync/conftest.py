"""Fixtures of the external targets: options naming a stream, schema or key prefix of the
test's own, removed afterwards (the services are the machine's: tests/services.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

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
