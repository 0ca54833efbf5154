"""Counters and histograms kept by the store, cheap enough for the writer's hot path.

They are plain integers updated by the writer thread and read by anyone; a reader may see a
slightly stale snapshot, which is fine for monitoring. ``api/`` exports them to Prometheus.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = ["Histogram", "WriterStats"]

GROUP_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)


class Histogram:
    """Cumulative-on-export histogram with fixed upper bounds (Prometheus ``le`` buckets)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= bound)`` pairs, ending with ``(inf, count)``."""
        running = 0
        pairs = []
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            pairs.append((bound, running))
        return pairs


@dataclass
class WriterStats:
    commits: int = 0
    failed_commits: int = 0
    failed_tasks: int = 0  # writes that failed alone, their group redone without them
    tasks: int = 0
    events: int = 0
    group_size: Histogram = field(default_factory=lambda: Histogram(GROUP_SIZE_BUCKETS))
    commit_seconds: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))

    def record_commit(self, tasks: int, events: int, seconds: float) -> None:
        self.commits += 1
        self.tasks += tasks
        self.events += events
        self.group_size.observe(tasks)
        self.commit_seconds.observe(seconds)
