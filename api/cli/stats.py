"""``kvdb stats``: the node's figures at a glance (``GET /stats``)."""

from __future__ import annotations

from typing import Any

from ..client import DEFAULT_URL
from .common import AsJson, Token, Url, connect, format_cell, out, print_fields, print_table, show

__all__ = ["stats"]

_NODE_FIELDS = (
    "node_id", "version", "durability", "uptime_s", "last_seq", "oldest_seq", "log_events",
    "records", "disk_bytes", "map_size", "subscribers",
)  # fmt: skip


def stats(as_json: AsJson = False, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Node, writer, streams, handlers and pipelines figures."""
    with connect(url, token) as client:
        doc = client.stats()
    show(doc, as_json, lambda: _render(doc))


def _render(doc: dict[str, Any]) -> None:
    print_fields({k: doc.get(k) for k in _NODE_FIELDS if k in doc}, title="node")
    print_fields(doc.get("writer", {}), title="writer")
    streams = [{"stream": name, **s} for name, s in doc.get("streams", {}).items()]
    print_table(
        streams, ["stream", "delivered", "batches", "lag_events", "lag_ms"], title="streams"
    )
    handlers = [
        {"handler": name, **h} for name, h in doc.get("bus", {}).get("handlers", {}).items()
    ]
    print_table(
        handlers,
        ["handler", "delivered", "failed", "retried", "dead_lettered", "lag_events"],
        title="handlers",
    )
    pipelines = [{"pipeline": name, **p} for name, p in doc.get("pipelines", {}).items()]
    print_table(
        pipelines,
        ["pipeline", "status", "events_in", "windows_fired", "late_dropped", "lag_events"],
        title="pipelines",
    )
    if doc.get("http"):
        out().print("http: " + format_cell(doc["http"]), highlight=False)
