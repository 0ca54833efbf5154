"""``RedisSyncTarget`` on the machine's Redis: both layouts, versions compared as u64 past
2**53, and what wrong credentials, no server, or a Redis that lost its data do."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from kvdb import RemoteBatch, RemoteItem
from sync import ResyncNeeded, TargetRefused, TargetUnavailable
from sync.protocol import Hello
from sync.targets.options import RedisOptions
from sync.targets.redis import RedisSyncTarget
from tests.services import REDIS_URL, redis_hashes, unique


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    made = aioredis.Redis.from_url(REDIS_URL)
    yield made
    await made.aclose()


def item(seq: int, key: str, value: bytes | None, hlc: int, origin: str = "a") -> RemoteItem:
    return RemoteItem(seq, key, value is None, value, "text/plain", hlc, origin, {origin: hlc}, seq)


async def test_versions_compare_as_u64_past_double_precision(redis_options: RedisOptions) -> None:
    """2**60 + 1 and 2**60 + 2 are the same double: the script must still tell them apart."""
    target = RedisSyncTarget("r", redis_options)
    base = 1 << 60
    await target.apply(RemoteBatch("a", "e", 0, 1, [item(1, "k", b"newer", base + 2)]))
    older = RemoteBatch("a", "e", 0, 0, [item(0, "k", b"older", base + 1)], snapshot=True)
    assert (await target.apply(older, "snapshot")).skipped == 1
    await target.apply(RemoteBatch("a", "e", 1, 2, [item(2, "k", b"max", (1 << 64) - 1, "b")]))
    state = await redis_hashes(redis_options.url, redis_options.key_prefix)
    assert state["k"] == (False, b"max", "text/plain", (1 << 64) - 1, "b")
    await target.close()


async def test_the_string_layout_keeps_plain_values_and_versions_aside(
    redis_options: RedisOptions, client: aioredis.Redis
) -> None:
    options = dataclasses.replace(redis_options, layout="string")
    target = RedisSyncTarget("r", options)
    hlc = 1 << 56
    await target.apply(RemoteBatch("a", "e", 0, 3, [
        item(1, "k", b"v1", hlc), item(2, "gone", b"x", hlc), item(3, "gone", None, hlc + 1),
    ]))  # fmt: skip
    prefix = options.key_prefix
    assert await client.get(prefix + "k") == b"v1"
    assert await client.exists(prefix + "gone") == 0
    versions = await client.hgetall(prefix + "_versions")
    assert versions == {b"k": f"{hlc} a".encode(), b"gone": f"{hlc + 1} a".encode()}
    stale = RemoteBatch("a", "e", 0, 0, [item(0, "gone", b"x", hlc)], snapshot=True)
    await target.apply(stale, "snapshot")  # the tombstone's version keeps it deleted
    assert await client.exists(prefix + "gone") == 0
    await target.close()


async def test_wrong_credentials_are_refused(
    redis_options: RedisOptions, client: aioredis.Redis
) -> None:
    user = unique("kvdbtest_")
    await client.execute_command("ACL", "SETUSER", user, "on", ">right", "~*", "+@all")
    try:
        wrong = REDIS_URL.replace("redis://", f"redis://{user}:wrong@")
        target = RedisSyncTarget("r", dataclasses.replace(redis_options, url=wrong))
        with pytest.raises(TargetRefused, match="password"):
            await target.handshake(Hello("a", "e", "r"))
        assert target.endpoint.startswith(f"redis://{user}:***@")
        right = RedisSyncTarget("r", dataclasses.replace(redis_options,
                                url=wrong.replace(":wrong@", ":right@")))  # fmt: skip
        assert (await right.handshake(Hello("a", "e", "r"))).checkpoint == 0
        await right.close()
    finally:
        await client.execute_command("ACL", "DELUSER", user)


async def test_no_server_is_unavailable(redis_options: RedisOptions) -> None:
    target = RedisSyncTarget("r", dataclasses.replace(redis_options, url="redis://127.0.0.1:1/0"))
    with pytest.raises(TargetUnavailable):
        await target.handshake(Hello("a", "e", "r"))
    assert not await target.check_health()


async def test_a_redis_that_lost_its_data_is_a_new_incarnation(
    redis_options: RedisOptions, client: aioredis.Redis
) -> None:
    target = RedisSyncTarget("r", redis_options)
    welcome = await target.handshake(Hello("a", "e", "r"))
    hlc = 1 << 56
    await target.apply(RemoteBatch("a", "e", 0, 1, [item(1, "k", b"1", hlc)], welcome.epoch))
    await client.delete(redis_options.key_prefix + "_sync", redis_options.key_prefix + "k")
    with pytest.raises(ResyncNeeded):
        await target.apply(RemoteBatch("a", "e", 1, 2, [item(2, "j", b"2", hlc)], welcome.epoch))
    again = await target.handshake(Hello("a", "e", "r"))
    assert again.checkpoint == 0 and again.epoch != welcome.epoch
    await target.close()
