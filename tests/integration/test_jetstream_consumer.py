"""config/jetstream_consumer.py: a consumer group of worker processes shares one node's
change events from JetStream, each event handled by one worker."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kvdb import RemoteBatch, RemoteItem
from sync.protocol import Hello
from sync.targets.jetstream import JetStreamSyncTarget
from sync.targets.options import JetStreamOptions
from tests.services import NATS_URL, unique
from tests.sync.conftest import external

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def jetstream_options() -> AsyncIterator[JetStreamOptions]:
    async with external("jetstream") as options:
        yield options


async def test_workers_share_the_events_each_once(jetstream_options: JetStreamOptions) -> None:
    target = JetStreamSyncTarget("events", jetstream_options)
    welcome = await target.handshake(Hello("a", "ep", "events"))
    hlc = 1 << 56
    items = [RemoteItem(i, f"orders/{i}", False, b"{}", None, hlc + i, "a", {"a": hlc + i}, i)
             for i in range(1, 601)]  # fmt: skip
    for start in range(0, 600, 200):
        batch = RemoteBatch(
            "a", "ep", start, start + 200, items[start : start + 200], welcome.epoch
        )
        await target.apply(batch)
    await target.close()
    output = subprocess.run(
        [sys.executable, str(REPO / "config" / "jetstream_consumer.py"), "--node", "a",
         "--workers", "3", "--servers", NATS_URL, "--stream", str(jetstream_options.stream),
         "--prefix", jetstream_options.subject_prefix, "--durable", unique("workers-"),
         "--batch", "10", "--idle-exit", "3", "--work-ms", "10"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    handled = re.findall(r"^worker (\d+) seq (\d+) ", output, re.MULTILINE)
    seqs = sorted(int(seq) for _, seq in handled)
    missing, twice = set(range(1, 601)) - set(seqs), len(seqs) - len(set(seqs))
    assert (sorted(missing)[:20], twice) == ([], 0)
    assert seqs == list(range(1, 601))
    assert len({worker for worker, _ in handled}) > 1  # spread over several workers
