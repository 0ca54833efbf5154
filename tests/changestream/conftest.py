"""Change-stream fixtures: a started manager over a temporary store, and processors that
record what they receive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from changestream import ChangeStreamManager
from kvdb import ChangeEvent, Store


class Recorder:
    """A processor that records batches; ``gate`` (when cleared) makes it stall."""

    def __init__(self, name: str = "recorder") -> None:
        self.name = name
        self.batches: list[list[ChangeEvent]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.received = asyncio.Event()

    async def process(self, batch: Sequence[ChangeEvent]) -> None:
        await self.gate.wait()
        self.batches.append(list(batch))
        self.received.set()

    @property
    def events(self) -> list[ChangeEvent]:
        return [event for batch in self.batches for event in batch]

    @property
    def seqs(self) -> list[int]:
        return [event.seq for event in self.events]

    async def wait_for(self, predicate: Callable[[Recorder], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self.received.clear()
                await self.received.wait()


@pytest.fixture
async def manager(store: Store) -> AsyncIterator[ChangeStreamManager]:
    manager = ChangeStreamManager(store)
    await manager.start()
    yield manager
    await manager.stop()
