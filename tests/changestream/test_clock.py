"""One contract for both clocks: the system clock and the manual clock tests drive by hand."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from changestream import Clock, SystemClock
from changestream.testing import ManualClock

Advance = Callable[[float], Awaitable[None]]


@pytest.fixture(params=["system", "manual"])
def clock_and_advance(request: pytest.FixtureRequest) -> tuple[Clock, Advance]:
    if request.param == "system":
        return SystemClock(), lambda ms: asyncio.sleep(ms / 1000)
    manual = ManualClock()
    return manual, manual.advance


async def test_wait_returns_true_once_the_event_is_set(
    clock_and_advance: tuple[Clock, Advance],
) -> None:
    clock, _ = clock_and_advance
    event = asyncio.Event()
    waiter = asyncio.create_task(clock.wait(event, 10_000))
    await asyncio.sleep(0)
    event.set()
    assert await asyncio.wait_for(waiter, 5) is True
    assert await clock.wait(event, 0) is True  # already set: no waiting at all


async def test_wait_times_out_when_time_passes(clock_and_advance: tuple[Clock, Advance]) -> None:
    clock, advance = clock_and_advance
    event = asyncio.Event()
    waiter = asyncio.create_task(clock.wait(event, 20))
    await asyncio.sleep(0)  # the wait has begun before time passes
    await advance(30)
    assert await asyncio.wait_for(waiter, 5) is False
    assert await clock.wait(event, 0) is False


async def test_sleep_and_now_move_together(clock_and_advance: tuple[Clock, Advance]) -> None:
    clock, advance = clock_and_advance
    before = clock.now_ms()
    sleeper = asyncio.create_task(clock.sleep(20))
    await asyncio.sleep(0)
    await advance(25)
    await asyncio.wait_for(sleeper, 5)
    assert clock.now_ms() - before >= 20
