"""Exponential backoff with full jitter (REPLICATION 5; the AWS architecture blog's "full
jitter"): the n-th consecutive retry waits ``random(0, min(cap, base * 2**n))``, so many
senders retrying one recovered target spread out instead of arriving together."""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    def __init__(
        self,
        base_ms: float,
        cap_ms: float,
        *,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self.failures = 0
        self._rng = rng

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        exponent = min(max(self.failures - 1, 0), 62)
        return float(min(self.cap_ms, self.base_ms * 2**exponent))

    def next_delay(self) -> float:
        """Count a failure and return how long to wait before the next attempt (ms)."""
        self.failures += 1
        return self._rng(0.0, self.ceiling())

    def reset(self) -> None:
        self.failures = 0
