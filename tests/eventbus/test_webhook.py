"""Webhooks against a real HTTP server on loopback: batches, headers, downtime and recovery,
permanent rejections, timeouts, dead letters re-driven once the receiver is back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from changestream.testing import ManualClock
from eventbus import BusSetup, EventRoute, InvalidHandler, RetryPolicy, WebhookHandler
from kvdb import Put, Store
from tests.conftest import eventually
from tests.eventbus.conftest import Receiver

ALL = EventRoute("all", handler_names=("hook",))


def webhook(receiver: Receiver, **options: Any) -> WebhookHandler:
    options.setdefault("flush_interval_ms", 0)
    options.setdefault("retry", RetryPolicy(max_attempts=2, initial_delay_ms=0, max_delay_ms=0))
    return WebhookHandler("hook", receiver.url, **options)


async def test_batches_are_posted_as_json_with_headers(
    make_bus: Any, store: Store, receiver: Receiver
) -> None:
    hook = webhook(receiver, batch_size=3, headers={"Authorization": "Bearer s3cret"})
    bus = await make_bus(BusSetup(handlers=(hook,), routes=(ALL,)))
    await store.batch([Put(f"k{i}", f"value {i}".encode()) for i in range(7)])
    await store.put("binary", b"\xff\x00")
    await eventually(lambda: len(receiver.seqs) == 8)
    assert receiver.seqs == list(range(1, 9))
    assert all(len(body["events"]) <= 3 for body in receiver.requests)
    first = receiver.requests[0]
    assert first["handler"] == "hook"
    assert first["events"][0]["key"] == "k0" and first["events"][0]["new_value"] == "value 0"
    assert receiver.requests[-1]["events"][-1]["encoding"] == "base64"
    headers = receiver.headers[0]
    assert headers["authorization"] == "Bearer s3cret"
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == "hook:1-3"
    assert "s3cret" not in str(bus.describe("hook"))  # header values are not shown


async def test_the_receiver_going_down_and_coming_back(
    make_bus: Any, store: Store, receiver: Receiver, manual_clock: ManualClock
) -> None:
    retry = RetryPolicy(max_attempts=100, initial_delay_ms=1000, max_delay_ms=1000, jitter=0)
    bus = await make_bus(
        BusSetup(handlers=(webhook(receiver, retry=retry),), routes=(ALL,)), clock=manual_clock
    )
    await store.put("before", b"1")
    await eventually(lambda: receiver.seqs == [1])
    receiver.stop()
    await store.batch([Put(f"during/{i}", b"2") for i in range(5)])
    await eventually(lambda: bus.stats()["hook"].failed >= 5)  # connection refused
    await manual_clock.wait_for_deadline(1000)  # the retry's backoff
    await manual_clock.advance(1000)  # another attempt while still down
    await eventually(lambda: bus.stats()["hook"].failed >= 10)
    receiver.start()  # back, on the same port
    await manual_clock.wait_for_deadline(1000)
    await manual_clock.advance(1000)
    await eventually(lambda: bus.stats()["hook"].delivered == 6)
    assert receiver.seqs == [1, 2, 3, 4, 5, 6]
    stats = bus.stats()["hook"]
    assert stats.retried >= 10 and stats.dead_lettered == 0 and stats.delivered == 6
    assert "POST http://127.0.0.1" in (stats.last_error or "")


async def test_down_past_the_retries_then_redriven(
    make_bus: Any, store: Store, receiver: Receiver
) -> None:
    bus = await make_bus(BusSetup(handlers=(webhook(receiver, batch_size=10),), routes=(ALL,)))
    receiver.stop()
    await store.batch([Put(f"k{i}", b"v") for i in range(4)])
    await eventually(lambda: bus.dead_letters.count("hook") == 1)
    letter = bus.dead_letter("hook", 1)
    assert [e.seq for e in letter.events] == [1, 2, 3, 4] and letter.attempts == 2
    assert "failed" in letter.error
    receiver.start()
    outcome = await bus.redrive("hook", 1)
    assert outcome.redriven and receiver.seqs == [1, 2, 3, 4]
    assert bus.dead_letters.count() == 0


@pytest.mark.parametrize(("status", "attempts"), [(400, 1), (422, 1), (503, 2), (429, 2)])
async def test_rejections_are_not_retried_but_overloads_are(
    make_bus: Any, store: Store, receiver: Receiver, status: int, attempts: int
) -> None:
    receiver.status = status
    bus = await make_bus(BusSetup(handlers=(webhook(receiver),), routes=(ALL,)))
    await store.put("k", b"v")
    await eventually(lambda: bus.dead_letters.count() == 1)
    letter = bus.dead_letter("hook", 1)
    assert letter.attempts == attempts and f"answered {status}" in letter.error


async def test_a_slow_receiver_times_out(make_bus: Any, store: Store, receiver: Receiver) -> None:
    receiver.delay = 0.5
    hook = webhook(receiver, timeout_ms=50, retry=RetryPolicy(max_attempts=1))
    bus = await make_bus(BusSetup(handlers=(hook,), routes=(ALL,)))
    await store.put("k", b"v")
    await eventually(lambda: bus.dead_letters.count() == 1)
    assert "timed out after 50 ms" in bus.dead_letter("hook", 1).error
    await asyncio.sleep(0.5)  # let the receiver's thread finish before it is shut down


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "http://", "example.com/hook", "/hook", "", "https//x"]
)
def test_webhook_urls_must_be_http_or_https(url: str) -> None:
    with pytest.raises(InvalidHandler, match="must be an absolute http:// or https:// URL"):
        WebhookHandler("hook", url)
