"""The README's embedding snippets, run the way a program runs them: at every start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api import Node, NodeSettings, Settings
from changestream import FunctionProcessor, StreamConfig, StreamExists
from tests.conftest import eventually


async def test_the_readme_embedding_snippet_runs_at_every_start(tmp_path: Path) -> None:
    """``streams.create(..., exist_ok=True)`` (#19): the second start finds the stream and
    resumes its processor after its checkpoint; a different config is still refused."""
    settings = Settings(node=NodeSettings(data_dir=tmp_path / "my-data"))
    seen: list[int] = []

    async def bill(batch: Any) -> None:
        seen.extend(event.seq for event in batch)

    config = StreamConfig("orders", key_patterns=("orders/.*",), enable_persistence=True)
    for run in range(2):
        async with Node(settings) as node:
            await node.streams.create(
                StreamConfig("orders", key_patterns=("orders/.*",), enable_persistence=True),
                processors=[FunctionProcessor("billing", bill)],
                exist_ok=True,
            )
            await node.store.put(f"orders/{run}", b"x")
            await eventually(lambda run=run: len(seen) == run + 1)
            await eventually(
                lambda run=run: (
                    (c := node.store.get_checkpoint("stream/orders/billing")) and c.seq == run + 1
                )
            )
            if run == 1:
                other = StreamConfig("orders", key_patterns=("other/.*",))
                with pytest.raises(StreamExists, match="another configuration"):
                    await node.streams.create(other, exist_ok=True)
                with pytest.raises(StreamExists):
                    await node.streams.create(config)
    assert seen == [1, 2]
