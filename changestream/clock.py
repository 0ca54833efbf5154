"""Time as a parameter: streams batch by timeout and report lag through a ``Clock``, so tests
move time by hand instead of sleeping, with ``changestream.testing.ManualClock`` (as bytewax's
``TimeTestingGetter``)."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    def now_ms(self) -> float:
        """Milliseconds since the epoch."""
        ...

    async def wait(self, event: asyncio.Event, timeout_ms: float | None) -> bool:
        """Wait until ``event`` is set (True) or ``timeout_ms`` passes (False)."""
        ...

    async def sleep(self, ms: float) -> None: ...


class SystemClock:
    def now_ms(self) -> float:
        return time.time() * 1000

    async def wait(self, event: asyncio.Event, timeout_ms: float | None) -> bool:
        if event.is_set():
            return True
        if timeout_ms is not None and timeout_ms <= 0:
            return False
        try:
            async with asyncio.timeout(None if timeout_ms is None else timeout_ms / 1000):
                await event.wait()
        except TimeoutError:
            return False
        return True

    async def sleep(self, ms: float) -> None:
        await asyncio.sleep(ms / 1000)
