"""``RemoteDBSyncTarget`` failing over: what counts as one failed attempt. Endpoints are real
loopback ports with nothing listening (connection refused), not mocks."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from kvdb import RemoteBatch
from sync import RemoteDBSyncTarget, TargetConfig, TargetUnavailable


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def target() -> AsyncIterator[RemoteDBSyncTarget]:
    endpoints = tuple(f"http://127.0.0.1:{closed_port()}" for _ in range(2))
    remote = RemoteDBSyncTarget(TargetConfig("b", endpoints), max_retry_count=2)
    yield remote
    await remote.close()


PAGE = RemoteBatch("a", "e1", 0, 0, [], None, snapshot=True)


async def attempt(target: RemoteDBSyncTarget, requests: int) -> None:
    results = await asyncio.gather(
        *(target.apply(PAGE, "snapshot") for _ in range(requests)), return_exceptions=True
    )
    assert all(isinstance(result, TargetUnavailable) for result in results)


async def test_requests_in_flight_together_fail_as_one_attempt(
    target: RemoteDBSyncTarget,
) -> None:
    first = target.endpoint
    await attempt(target, 3)  # three snapshot pages lost to one outage: one failure
    assert target.failovers == 0 and target.endpoint == first
    await attempt(target, 3)  # the retry fails too: max_retry_count (2) reached
    assert target.failovers == 1 and target.endpoint != first


async def test_requests_one_after_another_each_count(target: RemoteDBSyncTarget) -> None:
    await attempt(target, 1)
    await attempt(target, 1)
    assert target.failovers == 1
