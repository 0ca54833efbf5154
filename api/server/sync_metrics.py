"""Replication in ``/stats`` and ``/metrics``: per processor and target, lag, what was sent,
applied and skipped, conflicts, retries, failovers and the state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sync import TargetState

from ..node import Node
from .metrics import StatFamilies

__all__ = ["SyncCollector", "sync_summary"]


def sync_summary(node: Node) -> dict[str, Any]:
    keys = ("state", "lag_events", "lag_ms", "applied", "conflicts", "retries", "last_error")
    return {
        processor.name: {
            channel.name: {key: channel.status()[key] for key in keys}
            for channel in processor.channels.values()
        }
        for processor in node.sync.list()
    }


class SyncCollector(Collector):
    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        if not self.node.started:
            return
        families = StatFamilies(
            "kvdb_sync",
            ["processor", "target"],
            counters={
                "sent": "Versions sent to the target",
                "applied": "Versions the target stored",
                "skipped": "Versions the target already had (redeliveries, echoes)",
                "conflicts": "Concurrent versions the target resolved",
                "retries": "Failed attempts, retried",
                "snapshots": "Snapshot resyncs of the target",
                "failovers": "Moves to a failover endpoint",
            },
            gauges={
                "lag_events": "Committed events the target does not have yet",
                "lag_seconds": "Age of the oldest event the target does not have yet",
            },
        )
        states = GaugeMetricFamily(
            "kvdb_sync_state",
            "1 for the state each target is in",
            labels=["processor", "target", "state"],
        )
        for processor in self.node.sync.list():
            for channel in processor.channels.values():
                status = channel.status()
                labels = [processor.name, channel.name]
                families.add(labels, {**status, "lag_seconds": status["lag_ms"] / 1000})
                for state in TargetState:
                    states.add_metric([*labels, state.value], int(status["state"] == state))
        yield from families
        yield states
        yield CounterMetricFamily(
            "kvdb_sync_conflicts_recorded",
            "Conflict records written on this node",
            value=self.node.store.replica.conflict_count(),
        )
