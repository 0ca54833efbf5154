"""Hybrid logical clock (Kulkarni et al., 2014).

A timestamp is one 64-bit integer: the high 48 bits are wall-clock milliseconds, the low 16 bits
a logical counter. Timestamps from one clock strictly increase, even when the wall clock steps
back, and stay close to wall time so ``hlc >> 16`` is a usable commit time. After a restart the
clock is seeded with the last persisted timestamp, so it never goes backwards across restarts.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

__all__ = ["COUNTER_BITS", "HybridLogicalClock", "hlc_to_ms", "wall_clock_ms"]

COUNTER_BITS = 16
_COUNTER_MASK = (1 << COUNTER_BITS) - 1
_MAX_MS = (1 << 48) - 1


# Test-only: shifts this process's wall clock by this many ms, so the multi-process tests can
# run a node whose clock is wrong (tests/integration/test_sync_clocks.py). Never set it in
# production: every version this node mints, and its clock-skew check, follow it.
TEST_CLOCK_SKEW_MS = int(os.environ.get("KVDB_TEST_CLOCK_SKEW_MS") or 0)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000 + TEST_CLOCK_SKEW_MS


def hlc_to_ms(hlc: int) -> int:
    return hlc >> COUNTER_BITS


class HybridLogicalClock:
    """Thread-safe HLC. ``clock`` returns wall time in ms and is injectable for tests."""

    def __init__(self, clock: Callable[[], int] = wall_clock_ms, *, last: int = 0) -> None:
        self._clock = clock
        self._last = last
        self._lock = threading.Lock()

    @property
    def last(self) -> int:
        return self._last

    def now(self) -> int:
        """A timestamp greater than every one this clock issued or observed."""
        return self.reserve(1)

    def reserve(self, count: int) -> int:
        """The first of ``count`` consecutive timestamps, all greater than every one issued
        before: a batch stamps its writes with one read of the wall clock."""
        with self._lock:
            wall = self._clock() << COUNTER_BITS
            last = self._last
            # When the counter of `last` is full, last + 1 carries into the ms part: the clock
            # runs ahead of wall time by a millisecond rather than repeat a timestamp.
            first = wall if wall > last else last + 1
            self._last = first + count - 1
            return first

    def observe(self, remote: int) -> int:
        """Merge a timestamp received from another node (replication) and tick past it."""
        if not 0 <= remote >> COUNTER_BITS <= _MAX_MS:
            raise ValueError(f"HLC timestamp {remote} is out of range")
        with self._lock:
            wall = self._clock() << COUNTER_BITS
            self._last = max(wall, self._last + 1, remote + 1)
            return self._last
