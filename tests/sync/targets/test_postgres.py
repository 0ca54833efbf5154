"""``PostgresSyncTarget`` on the machine's PostgreSQL: the version guard, several nodes into
one table, the jsonb column, and what a missing database, an unknown role, a dropped
connection or a dropped table do."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import psycopg
import pytest

from kvdb import RemoteBatch, RemoteItem
from kvdb.hlc import wall_clock_ms
from sync import ResyncNeeded, TargetRefused, TargetUnavailable
from sync.protocol import Hello
from sync.targets.options import PostgresOptions
from sync.targets.postgres import PostgresSyncTarget
from tests.services import PG_DSN, postgres_rows


@pytest.fixture
async def target(postgres_options: PostgresOptions) -> AsyncIterator[PostgresSyncTarget]:
    made = PostgresSyncTarget("pg", postgres_options)
    yield made
    await made.close()


def item(seq: int, key: str, value: bytes | None, hlc: int, origin: str = "a") -> RemoteItem:
    return RemoteItem(seq, key, value is None, value, "text/plain", hlc, origin, {origin: hlc}, seq)


async def table(options: PostgresOptions) -> dict[str, tuple[object, ...]]:
    return await postgres_rows(options.dsn, options.schema, options.table_for("pg"))


async def test_an_older_version_never_overwrites_a_newer_one(
    target: PostgresSyncTarget, postgres_options: PostgresOptions
) -> None:
    hlc = wall_clock_ms() << 16
    await target.apply(RemoteBatch("a", "e", 0, 1, [item(1, "k", b"new", hlc + 5)]))
    snapshot = RemoteBatch("a", "e", 0, 0, [item(0, "k", b"old", hlc)], snapshot=True)
    result = await target.apply(snapshot, "snapshot")
    assert (result.applied, result.skipped) == (0, 1)
    assert (await table(postgres_options))["k"][1] == b"new"


async def test_several_nodes_feed_one_table_and_the_greater_version_wins(
    postgres_options: PostgresOptions,
) -> None:
    """hlc values past 2**63 (beyond bigint) and origins compared byte-wise."""
    a, b = PostgresSyncTarget("pg", postgres_options), PostgresSyncTarget("pg", postgres_options)
    big = (1 << 64) - 10
    await b.apply(RemoteBatch("b", "eb", 0, 1, [item(1, "k", b"from b", big, "b")]))
    await a.apply(RemoteBatch("a", "ea", 0, 1, [item(1, "k", b"from a", big, "a")]))
    await a.apply(RemoteBatch("a", "ea", 1, 2, [item(2, "j", b"a", big, "B")]))
    await b.apply(RemoteBatch("b", "eb", 1, 2, [item(2, "j", b"b", big, "a")]))
    rows = await table(postgres_options)
    assert rows["k"][1:] == (b"from b", "text/plain", big, "b")  # same hlc: "b" > "a"
    assert rows["j"][4] == "a"  # byte-wise, "a" (0x61) > "B" (0x42)
    assert (await a.handshake(Hello("a", "ea", "pg"))).checkpoint == 2
    assert (await b.handshake(Hello("b", "eb", "pg"))).checkpoint == 2
    await a.close()
    await b.close()


async def test_json_values_fill_a_jsonb_column(postgres_options: PostgresOptions) -> None:
    options = dataclasses.replace(postgres_options, json_values=True)
    target = PostgresSyncTarget("pg", options)
    hlc = wall_clock_ms() << 16
    items = [item(1, "doc", b'{"n": [1, 2]}', hlc), item(2, "text", b"not json", hlc),
             item(3, "nul", b'"\\u0000"', hlc), item(4, "gone", None, hlc)]  # fmt: skip
    await target.apply(RemoteBatch("a", "e", 0, 4, items))
    async with await psycopg.AsyncConnection.connect(options.dsn) as conn:
        cursor = await conn.execute(
            f"SELECT convert_from(key, 'UTF8'), value_json FROM \"{options.schema}\".kvdb_pg"
        )
        found = dict(await cursor.fetchall())
    assert found == {"doc": {"n": [1, 2]}, "text": None, "nul": None, "gone": None}
    await target.close()


async def test_a_missing_database_and_an_unknown_role_are_refused(
    postgres_options: PostgresOptions,
) -> None:
    for dsn in (PG_DSN.rsplit("/", 1)[0] + "/kvdb_no_such_db",
                PG_DSN.replace("//postgres@", "//kvdb_no_such_role@")):  # fmt: skip
        target = PostgresSyncTarget("pg", dataclasses.replace(postgres_options, dsn=dsn))
        with pytest.raises(TargetRefused, match="does not exist"):
            await target.handshake(Hello("a", "e", "pg"))
        assert not await target.check_health()


async def test_nothing_listening_is_unavailable(postgres_options: PostgresOptions) -> None:
    dsn = "postgresql://postgres@127.0.0.1:1/test"
    target = PostgresSyncTarget("pg", dataclasses.replace(postgres_options, dsn=dsn))
    with pytest.raises(TargetUnavailable):
        await target.handshake(Hello("a", "e", "pg"))


async def test_a_dropped_connection_is_retried_and_nothing_is_applied_twice(
    target: PostgresSyncTarget, postgres_options: PostgresOptions
) -> None:
    hlc = wall_clock_ms() << 16
    await target.apply(RemoteBatch("a", "e", 0, 1, [item(1, "k", b"1", hlc)]))
    async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as admin:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            ("kvdb sync pg",),
        )
    batch = RemoteBatch("a", "e", 1, 2, [item(2, "k", b"2", hlc + 1)])
    with pytest.raises(TargetUnavailable):
        await target.apply(batch)
    assert (await target.apply(batch)).applied == 1
    assert (await target.apply(batch)).duplicate
    assert (await table(postgres_options))["k"][1] == b"2"


async def test_a_dropped_table_is_made_again_and_the_node_resends(
    target: PostgresSyncTarget, postgres_options: PostgresOptions
) -> None:
    hlc = wall_clock_ms() << 16
    welcome = await target.handshake(Hello("a", "e", "pg"))
    await target.apply(RemoteBatch("a", "e", 0, 1, [item(1, "k", b"1", hlc)], welcome.epoch))
    async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as admin:
        await admin.execute(f'DROP TABLE "{postgres_options.schema}".kvdb_pg')
    batch = RemoteBatch("a", "e", 1, 2, [item(2, "j", b"2", hlc)], welcome.epoch)
    with pytest.raises(TargetUnavailable, match="recreating"):
        await target.apply(batch)
    with pytest.raises(ResyncNeeded):
        await target.apply(batch)
    again = await target.handshake(Hello("a", "e", "pg"))
    assert again.checkpoint == 0 and again.epoch != welcome.epoch
