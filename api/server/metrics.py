"""Prometheus metrics for ``GET /metrics``.

Counters live where the work happens (the store's writer, the HTTP handlers) as plain
integers; a custom collector turns them into metric families only when scraped, so the hot
path never touches a metrics library lock.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from kvdb.stats import Histogram

from ..node import Node

__all__ = [
    "CONTENT_TYPE",
    "HttpMetrics",
    "StatFamilies",
    "build_registry",
    "histogram_buckets",
    "render_metrics",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HttpMetrics:
    """Requests served, by operation and status. Updated only on the event loop thread."""

    def __init__(self) -> None:
        self.requests: collections.Counter[tuple[str, int]] = collections.Counter()

    def count(self, op: str, status: int) -> None:
        self.requests[(op, status)] += 1

    @property
    def reads(self) -> int:
        return sum(n for (op, status), n in self.requests.items() if op in ("get", "scan"))


class _NodeCollector(Collector):
    def __init__(self, node: Node, http: HttpMetrics) -> None:
        self.node = node
        self.http = http

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "kvdb_http_requests",
            "HTTP requests served, by operation and status",
            labels=["op", "status"],
        )
        for (op, status), count in sorted(self.http.requests.items()):
            requests.add_metric([op, str(status)], count)
        yield requests
        yield CounterMetricFamily(
            "kvdb_reads", "Key reads and scans served over HTTP", value=self.http.reads
        )
        if not self.node.started:
            return
        stats = self.node.store.stats()
        writer = stats.writer
        yield CounterMetricFamily(
            "kvdb_writes", "Committed mutations (change events)", value=writer.events
        )
        yield CounterMetricFamily(
            "kvdb_write_requests",
            "Write requests (puts, deletes, batches) committed",
            value=writer.tasks,
        )
        yield CounterMetricFamily(
            "kvdb_commits", "LMDB write transactions committed", value=writer.commits
        )
        yield CounterMetricFamily(
            "kvdb_commit_failures",
            "Write transactions that failed and were rolled back",
            value=writer.failed_commits,
        )
        yield _histogram(
            "kvdb_commit_group_size", "Write requests coalesced into one commit", writer.group_size
        )
        yield _histogram(
            "kvdb_commit_latency_seconds",
            "Time to apply and commit one group",
            writer.commit_seconds,
        )
        yield GaugeMetricFamily(
            "kvdb_last_seq", "Seq of the last committed event", value=stats.last_seq
        )
        yield GaugeMetricFamily(
            "kvdb_changelog_oldest_seq", "Oldest retained seq", value=stats.oldest_seq
        )
        yield GaugeMetricFamily(
            "kvdb_changelog_events", "Events retained in the change log", value=stats.log_events
        )
        yield GaugeMetricFamily(
            "kvdb_records", "Keys stored, including tombstones", value=stats.records
        )
        yield GaugeMetricFamily(
            "kvdb_map_size_bytes", "Current LMDB map size", value=stats.map_size
        )
        yield from _stream_metrics(self.node)


class StatFamilies:
    """Labelled counters and gauges named ``<prefix>_<stat>``, filled per entity (a stream
    consumer, a handler, a pipeline) from a mapping of its stats when a collector is scraped."""

    def __init__(
        self, prefix: str, labels: list[str], counters: dict[str, str], gauges: dict[str, str]
    ) -> None:
        self._families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            stat: CounterMetricFamily(f"{prefix}_{stat}", text, labels=labels)
            for stat, text in counters.items()
        }
        self._families.update(
            (stat, GaugeMetricFamily(f"{prefix}_{stat}", text, labels=labels))
            for stat, text in gauges.items()
        )

    def add(self, label_values: list[str], stats: Mapping[str, float]) -> None:
        for stat, family in self._families.items():
            family.add_metric(label_values, stats[stat])

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._families.values())


def _stream_metrics(node: Node) -> Iterator[Metric]:
    families = StatFamilies(
        "kvdb_stream",
        ["stream", "consumer"],
        counters={
            "delivered": "Events delivered to a stream consumer",
            "batches": "Batches delivered to a stream consumer",
            "failures": "Failed process() calls (retried)",
        },
        gauges={
            "lag_events": "Committed events not yet acknowledged",
            "lag_seconds": "Age of the oldest unacknowledged event",
            "buffer_fill_ratio": "Live-tail buffer fill (0..1)",
        },
    )
    for stream in node.streams.list():
        for consumer in stream.consumers.values():
            stat = consumer.stats()
            families.add(
                [stream.name, consumer.name],
                {
                    "delivered": stat.delivered,
                    "batches": stat.batches,
                    "failures": stat.failures,
                    "lag_events": stat.lag_events,
                    "lag_seconds": stat.lag_ms / 1000,
                    "buffer_fill_ratio": stat.buffer_fill,
                },
            )
    yield from families
    yield GaugeMetricFamily(
        "kvdb_subscribers",
        "Live cursors: stream consumers and ad-hoc subscriptions",
        value=node.streams.subscriber_count,
    )


def histogram_buckets(histogram: Histogram) -> list[tuple[str, float]]:
    """Prometheus ``le`` buckets (cumulative counts) of one of the store's histograms."""
    return [("+Inf" if b == float("inf") else repr(b), n) for b, n in histogram.cumulative()]


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(
        name, documentation, buckets=histogram_buckets(histogram), sum_value=histogram.sum
    )


def build_registry(node: Node, http: HttpMetrics) -> CollectorRegistry:
    """A registry of this node's metrics; other parts register their collectors on it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_NodeCollector(node, http))
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
