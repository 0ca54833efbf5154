"""Shared fixtures: temporary LMDB environments and a steppable clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kvdb import Store, StoreConfig


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
