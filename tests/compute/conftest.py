"""Stream-computing fixtures: change events built by hand, a runtime driven batch by batch,
and an engine over a temporary store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import orjson
import pytest

from changestream import ChangeStreamManager
from changestream.testing import ManualClock
from compute import (
    PipelineProcessor,
    PipelineRuntime,
    StreamComputingEngine,
    StreamPipeline,
)
from kvdb import ChangeEvent, EventType, Put, Store
from tests.conftest import eventually

BASE = 1_700_000_000_000  # an arbitrary epoch-ms origin for event times


class Events:
    """Change events with consecutive seqs, as the store would commit them."""

    def __init__(self) -> None:
        self.seq = 0

    def make(
        self,
        key: str,
        value: Any,
        *,
        ts: int = BASE,
        type: EventType = EventType.INSERT,
    ) -> ChangeEvent:
        self.seq += 1
        raw = value if isinstance(value, bytes) or value is None else orjson.dumps(value)
        return ChangeEvent(self.seq, type, key, None, raw, ts << 16, "test-node", self.seq)

    def docs(self, key: str, docs: Iterable[dict[str, Any]]) -> list[ChangeEvent]:
        return [self.make(key, doc) for doc in docs]


@pytest.fixture
def events() -> Events:
    return Events()


def run(
    pipeline: StreamPipeline,
    events: Sequence[ChangeEvent],
    *,
    batch: int = 1000,
    listening: bool = True,
) -> tuple[PipelineRuntime, list[Any]]:
    """Feed ``events`` through a fresh runtime in batches, calling (plain) sinks as the
    processor would; returns the runtime and every update."""
    runtime = PipelineRuntime(pipeline)
    runtime.listening = listening
    updates: list[Any] = []
    for start in range(0, len(events), batch):
        produced, outputs = runtime.process(events[start : start + batch])
        updates.extend(produced)
        for sink in runtime.sinks:
            for output in outputs:
                sink.fn(output)
    return runtime, updates


def rows(runtime: PipelineRuntime) -> list[dict[str, Any]]:
    return list(runtime.rows())


@pytest.fixture
async def manager(store: Store) -> AsyncIterator[ChangeStreamManager]:
    manager = ChangeStreamManager(store, clock=ManualClock())
    await manager.start()
    yield manager
    await manager.stop()


@pytest.fixture
async def engine(
    store: Store, manager: ChangeStreamManager
) -> AsyncIterator[StreamComputingEngine]:
    engine = StreamComputingEngine(store, manager, checkpoint_interval_ms=0, batch_timeout_ms=0)
    await engine.start()
    yield engine
    await engine.stop()


async def settle(processor: PipelineProcessor, store: Store, timeout: float = 5.0) -> None:
    """Wait until the pipeline's stream has handed it everything committed so far."""

    def settled() -> bool:
        stats = processor.stream_stats() if processor.stream_stats else None
        return stats is not None and stats.checkpoint >= store.last_seq

    await eventually(settled, timeout)


async def write(store: Store, docs: list[dict[str, Any]], prefix: str = "clicks") -> None:
    offset = store.last_seq
    await store.batch(
        [Put(f"{prefix}/{offset + i}", orjson.dumps(doc)) for i, doc in enumerate(docs)]
    )
