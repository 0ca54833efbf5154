"""Per-handler counters, kept as plain numbers on the event loop and read when asked."""

from __future__ import annotations

import collections
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kvdb.stats import Histogram

__all__ = ["LATENCY_BUCKETS", "HandlerCounters", "HandlerStats", "orphan_stats", "percentile"]

# Seconds from commit to handler return; batching handlers wait up to their flush interval.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5, 10, 30)
RECENT_LATENCIES = 1024


class HandlerCounters:
    """Updated by the handler's runner. ``delivered``, ``failed`` (failed attempts),
    ``retried`` and ``dead_lettered`` count events, not calls: a failed batch of 10 is 10;
    ``dead_letters_evicted`` counts dead letters dropped past the bus's limit."""

    __slots__ = (
        "dead_lettered",
        "dead_letters_evicted",
        "delivered",
        "deliveries",
        "failed",
        "last_error",
        "latency",
        "recent_latency_ms",
        "retried",
    )

    def __init__(self) -> None:
        self.delivered = 0
        self.deliveries = 0
        self.failed = 0
        self.retried = 0
        self.dead_lettered = 0
        self.dead_letters_evicted = 0
        self.last_error: str | None = None
        self.latency = Histogram(LATENCY_BUCKETS)
        self.recent_latency_ms: collections.deque[float] = collections.deque(
            maxlen=RECENT_LATENCIES
        )

    def observe_latency(self, ms: float) -> None:
        ms = max(ms, 0.0)
        self.latency.observe(ms / 1000)
        self.recent_latency_ms.append(ms)


@dataclass(frozen=True, slots=True)
class HandlerStats:
    """A snapshot. ``lag_events``: events committed after the last one this handler has
    finished with (handled, skipped as not routed to it, or dead-lettered); ``lag_ms``: age of
    the oldest of them. Latencies are commit-to-handled, over recent deliveries."""

    name: str
    state: str
    checkpoint: int
    handled_through: int
    delivered: int
    failed: int
    retried: int
    dead_lettered: int
    dead_letters_evicted: int
    pending: int
    lag_events: int
    lag_ms: float
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def orphan_stats(name: str, checkpoint: int, last_seq: int) -> HandlerStats:
    """An orphaned handler's figures: it runs no more, and lags behind from its checkpoint
    (which is what still holds back change-log retention)."""
    return HandlerStats(
        name=name, state="orphaned", checkpoint=checkpoint, handled_through=checkpoint,
        delivered=0, failed=0, retried=0, dead_lettered=0, dead_letters_evicted=0, pending=0,
        lag_events=max(0, last_seq - checkpoint), lag_ms=0.0, latency_ms_p50=None,
        latency_ms_p99=None, last_error=None,
    )  # fmt: skip


def percentile(samples: Iterable[float], q: int) -> float | None:
    data = sorted(samples)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    return statistics.quantiles(data, n=100, method="inclusive")[q - 1]
