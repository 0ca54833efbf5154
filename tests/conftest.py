"""Shared fixtures and helpers: temporary LMDB environments, a steppable clock, and
``eventually``: the one way a test waits for something another task or thread will do."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kvdb import Store, StoreConfig


async def eventually(
    check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.002
) -> Any:
    """Call ``check`` (a function, or one returning an awaitable) until it returns something
    truthy, and return that; fail the test if ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(check, timeout, result))
        await asyncio.sleep(interval)


def eventually_sync(
    check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.005
) -> Any:
    """``eventually`` for tests without an event loop (the ASGI test client, threads)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(check, timeout, result))
        time.sleep(interval)


def _timed_out(check: Callable[[], Any], timeout: float, result: Any) -> str:
    try:
        what = inspect.getsource(check).strip()
    except (OSError, TypeError):
        what = repr(check)
    return f"still {result!r} after {timeout} s: {what}"


class StepClock:
    """Wall clock in ms that tests move by hand (forwards or backwards)."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def store_config(tmp_path: Path) -> StoreConfig:
    return StoreConfig(data_dir=tmp_path / "data", node_id="test-node")


@pytest.fixture
def store(store_config: StoreConfig) -> Iterator[Store]:
    with Store(store_config) as opened:
        yield opened
