"""Shutting down with feeds open: every long-lived response ends with a final message.

An SSE feed, a long poll or a WebSocket subscription never finishes by itself, and a server
shutting down gracefully waits for its requests to finish. So when the node begins to stop
(``run.NodeServer`` on SIGTERM, before uvicorn waits for its connections; the app's lifespan
for other servers), ``Draining.begin`` tells every feed, which ends at once: SSE and WebSocket
with an ``error`` message of code ``shutting_down`` that says where to resume, a long poll
with its (empty) page. ``idle`` waits, briefly, until they all have.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Iterator
from typing import TypeVar

from changestream.aio import cancel_and_wait

from ..errors import ShuttingDown

__all__ = ["Drained", "Draining"]

_T = TypeVar("_T")


class Drained(Exception):
    """Raised in a feed, instead of its next batch, once the server began to shut down."""


class Draining:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.feeds = 0

    @property
    def started(self) -> bool:
        return self._event.is_set()

    def begin(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()

    @contextlib.contextmanager
    def feed(self) -> Iterator[None]:
        """Count a feed while it runs (``idle`` waits for none to be left)."""
        self.feeds += 1
        try:
            yield
        finally:
            self.feeds -= 1

    async def race(self, awaitable: Awaitable[_T]) -> _T:
        """The result of ``awaitable``, or ``Drained`` if the shutdown begins first."""
        task = asyncio.ensure_future(awaitable)
        if self.started:
            await cancel_and_wait(task)
            raise Drained
        stop = asyncio.ensure_future(self._event.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(stop)
            if not task.done():
                await cancel_and_wait(task)
        if task.cancelled():
            raise Drained
        return task.result()

    async def idle(self, timeout: float) -> None:
        """Wait until every feed has ended, or ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.feeds and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def message(self, resume: str) -> ShuttingDown:
        return ShuttingDown(f"the node is shutting down: reconnect and resume with {resume}")
