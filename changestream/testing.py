"""Test doubles for code built on change streams (as bytewax keeps ``bytewax.testing``): not
imported by the package itself, so nothing in production depends on them.

``ManualClock`` is a ``Clock`` that moves only when a test says so: batch timeouts, retry
backoff, checkpoint intervals and lag are then tested without sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Any

__all__ = ["ManualClock"]


class ManualClock:
    """A clock that only moves when ``advance`` is called; waiters whose deadline passes wake."""

    def __init__(self, start_ms: float = 1_700_000_000_000) -> None:
        self._now = start_ms
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._ids = itertools.count()

    def now_ms(self) -> float:
        return self._now

    async def advance(self, ms: float) -> None:
        """Move time forward and let every task whose deadline passed run."""
        self._now += ms
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
        for _ in range(5):  # let woken tasks run to their next await
            await asyncio.sleep(0)

    def deadlines(self) -> list[float]:
        """The deadlines still waited on, in ms from now, soonest first. Tests wait for the
        one they mean to pass before they advance: a deadline set after ``advance`` counts
        from the new time."""
        return sorted(at - self._now for at, _, future in self._sleepers if not future.done())

    async def wait_for_deadline(self, ms: float, timeout_s: float = 10.0) -> None:
        """Wait (in real time) until some task waits for a deadline ``ms`` from now."""
        async with asyncio.timeout(timeout_s):
            while ms not in self.deadlines():
                await asyncio.sleep(0.002)

    def _deadline(self, ms: float) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + ms, next(self._ids), future))
        return future

    async def sleep(self, ms: float) -> None:
        if ms > 0:
            await self._deadline(ms)

    async def wait(self, event: asyncio.Event, timeout_ms: float | None) -> bool:
        if event.is_set():
            return True
        if timeout_ms is not None and timeout_ms <= 0:
            return False
        waiter: asyncio.Future[Any] = asyncio.ensure_future(event.wait())
        pending: set[asyncio.Future[Any]] = {waiter}
        deadline = None if timeout_ms is None else self._deadline(timeout_ms)
        if deadline is not None:
            pending.add(deadline)
        try:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if deadline is not None:
                deadline.cancel()
        return event.is_set()
