"""Failures: retries with exponential backoff and jitter (on an injected clock), dead letters,
re-drive and purge, permanent errors, and the counters."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import pytest

from changestream.testing import ManualClock
from eventbus import (
    BaseEventHandler,
    BusConfig,
    BusSetup,
    EventRoute,
    InvalidBusConfig,
    PermanentDeliveryError,
    RetryPolicy,
    UnknownDeadLetter,
)
from kvdb import ChangeEvent, Put, Store
from tests.conftest import eventually
from tests.eventbus.conftest import Recorder


class Flaky(BaseEventHandler):
    """Fails its first ``failures`` calls, then records."""

    def __init__(self, name: str, failures: int, retry: RetryPolicy) -> None:
        super().__init__(name, retry=retry)
        self.failures = failures
        self.calls = 0
        self.seqs: list[int] = []

    async def handle(self, events: Sequence[ChangeEvent]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"down (call {self.calls})")
        self.seqs.extend(e.seq for e in events)


def everything(*handlers: str) -> EventRoute:
    return EventRoute("all", handler_names=handlers)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(max_attempts=10, initial_delay_ms=100, max_delay_ms=1000, jitter=0)
    rng = random.Random(1)
    assert [policy.delay_ms(n, rng) for n in range(1, 7)] == [100, 200, 400, 800, 1000, 1000]
    jittered = RetryPolicy(initial_delay_ms=100, max_delay_ms=10_000, jitter=0.5)
    delays = [jittered.delay_ms(3, rng) for _ in range(200)]
    assert all(200 <= d <= 400 for d in delays) and len(set(delays)) > 100


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be an integer >= 1"),
        ({"initial_delay_ms": 10, "max_delay_ms": 5}, "0 <= initial_delay <= max_delay"),
        ({"jitter": 2}, "jitter must be within 0..1"),
        ({"max_attempts": "3"}, "must be a number"),
    ],
)
def test_bad_retry_policies(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidBusConfig, match=message):
        RetryPolicy(**fields)


async def test_retries_wait_the_backoff_on_the_injected_clock(
    make_bus: Any, store: Store, manual_clock: ManualClock
) -> None:
    policy = RetryPolicy(max_attempts=4, initial_delay_ms=100, max_delay_ms=250, jitter=0)
    flaky = Flaky("flaky", failures=3, retry=policy)
    bus = await make_bus(
        BusSetup(handlers=(flaky,), routes=(everything("flaky"),)), clock=manual_clock
    )
    await store.put("k", b"v")
    await eventually(lambda: flaky.calls == 1)
    for wait, calls in ((100, 2), (200, 3), (250, 4)):  # 100 * 2**n, capped at 250
        await manual_clock.wait_for_deadline(wait)
        await manual_clock.advance(wait - 1)
        await asyncio.sleep(0.01)
        assert flaky.calls == calls - 1
        await manual_clock.advance(1)
        await eventually(lambda calls=calls: flaky.calls == calls)  # type: ignore[misc]
    assert flaky.seqs == [1]
    stats = bus.stats()["flaky"]
    assert (stats.delivered, stats.failed, stats.retried, stats.dead_lettered) == (1, 3, 3, 0)
    assert stats.last_error == "ConnectionError: down (call 3)"


async def test_a_poison_event_is_dead_lettered_and_the_handler_moves_on(
    make_bus: Any, store: Store
) -> None:
    picky, other = Recorder("picky"), Recorder("other")
    picky.fail = {3}
    bus = await make_bus(BusSetup(handlers=(picky, other), routes=(everything("picky", "other"),)))
    await store.batch([Put(f"k{i}", f"{i}".encode()) for i in range(1, 6)])
    await eventually(lambda: len(picky.seqs) == 4)
    assert picky.seqs == [1, 2, 4, 5]  # in order; the poison event did not block the rest
    assert other.seqs == [1, 2, 3, 4, 5]
    (letter,) = bus.dead_letters.page("picky")[0]
    assert letter.id == "picky/3" and [e.key for e in letter.events] == ["k3"]
    assert letter.attempts == 3 and letter.error == "RuntimeError: refusing seq 3"
    assert letter.first_failed_ms <= letter.last_failed_ms
    stats = bus.stats()["picky"]
    assert (stats.delivered, stats.failed, stats.retried, stats.dead_lettered) == (4, 3, 2, 1)
    await eventually(lambda: bus.stats()["picky"].checkpoint == 5)  # it moved past the letter


async def test_dead_letters_past_the_limit_evict_the_oldest(make_bus: Any, store: Store) -> None:
    picky, other = Recorder("picky"), Recorder("other")
    picky.fail = set(range(1, 8))
    setup = BusSetup(handlers=(picky, other), routes=(everything("picky", "other"),))
    other.fail = {1}
    bus = await make_bus(setup, config=BusConfig(max_dead_letters=3))
    await store.batch([Put(f"k{i}", b"v") for i in range(1, 9)])
    await eventually(lambda: picky.seqs == [8] and bus.stats()["other"].dead_lettered == 1)
    letters, _ = bus.dead_letters.page("picky")
    assert [letter.seq for letter in letters] == [5, 6, 7]  # the newest three
    assert [s for _, s in bus.dead_letters.ids()[0]] == [1, 5, 6, 7]  # other's own stays
    assert store.list_system_records("bus/dead/picky/")[0][0].endswith("00005")  # on disk too
    stats = bus.stats()["picky"]
    assert (stats.dead_lettered, stats.dead_letters_evicted) == (7, 4)
    assert bus.stats()["other"].dead_letters_evicted == 0
    bus.dead_letters.load()  # the index rebuilt from LMDB agrees
    assert bus.dead_letters.counts() == {"other": 1, "picky": 3}


def test_the_dead_letter_limit_is_checked() -> None:
    with pytest.raises(InvalidBusConfig, match="max_dead_letters must be an integer >= 1"):
        BusConfig(max_dead_letters=0)


async def test_a_failing_batch_is_one_dead_letter(make_bus: Any, store: Store) -> None:
    batcher = Recorder("batcher", batch_size=3)
    batcher.fail = {2}
    bus = await make_bus(BusSetup(handlers=(batcher,), routes=(everything("batcher"),)))
    await store.batch([Put(f"k{i}", b"v") for i in range(6)])
    await eventually(lambda: batcher.seqs == [4, 5, 6])
    (letter,) = bus.dead_letters.page()[0]
    assert [e.seq for e in letter.events] == [1, 2, 3] and letter.id == "batcher/1"


async def test_permanent_errors_skip_the_retries(make_bus: Any, store: Store) -> None:
    class Rejecting(Recorder):
        async def handle(self, events: Sequence[ChangeEvent]) -> None:
            self.attempts += 1
            raise PermanentDeliveryError("the receiver says 400: bad schema")

    handler = Rejecting("rejecting")
    bus = await make_bus(BusSetup(handlers=(handler,), routes=(everything("rejecting"),)))
    await store.put("k", b"v")
    await eventually(lambda: bus.dead_letters.count() == 1)
    assert handler.attempts == 1 and bus.dead_letter("rejecting", 1).attempts == 1


async def test_redrive_purge_and_persistence(make_bus: Any, store: Store) -> None:
    picky, second = Recorder("picky"), Recorder("second")
    picky.fail = {2, 4}
    second.fail = {1}
    bus = await make_bus(
        BusSetup(handlers=(picky, second), routes=(everything("picky", "second"),))
    )
    await store.batch([Put(f"k{i}", b"v") for i in range(1, 6)])
    await eventually(lambda: bus.dead_letters.count() == 3)
    assert bus.dead_letters.counts() == {"picky": 2, "second": 1}
    ids, cursor = bus.dead_letters.ids(limit=2)
    assert ids == [("picky", 2), ("picky", 4)] and cursor == ("picky", 4)
    assert bus.dead_letters.ids(after=cursor, limit=2) == ([("second", 1)], None)

    failed = await bus.redrive("picky", 2)  # the cause is not fixed yet
    assert not failed.redriven and failed.error == "RuntimeError: refusing seq 2"
    assert bus.dead_letter("picky", 2).attempts == 4
    picky.fail.clear()
    outcome = await bus.redrive("picky", 2)
    assert outcome.redriven and picky.seqs[-1] == 2
    with pytest.raises(UnknownDeadLetter, match="no dead letter picky/2"):
        bus.dead_letter("picky", 2)

    # redrive_all leaves a handler alone after its first failure
    outcomes = await bus.redrive_all()
    assert [(o.id, o.redriven) for o in outcomes] == [("picky/4", True), ("second/1", False)]

    # dead letters are in LMDB: a new bus over the same store sees them
    await bus.stop()
    again = await make_bus(
        BusSetup(
            handlers=(Recorder("picky"), Recorder("second")),
            routes=(everything("picky", "second"),),
        )
    )
    assert again.dead_letters.counts() == {"second": 1}
    assert again.dead_letter("second", 1).events[0].key == "k1"
    assert await again.dead_letters.purge("second") == 1
    assert again.dead_letters.count() == 0 and store.list_system_records("bus/dead/") == []
