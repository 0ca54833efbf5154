"""``kvdb streams``: named change streams, their consumers, lag and checkpoints."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ..client import DEFAULT_URL
from .common import AsJson, Token, Url, connect, print_fields, print_json, print_table, show

__all__ = ["app"]

app = typer.Typer(help="Named change streams: list, show, stats, create or update, delete.")


@app.command("list")
def list_streams(as_json: AsJson = False, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Every stream with its figures."""
    with connect(url, token) as client:
        streams = client.streams()
    rows = [
        {
            "name": s["name"],
            "patterns": s["config"].get("key_patterns"),
            "durable": s["config"].get("enable_persistence"),
            "consumers": len(s["consumers"]),
            "delivered": s["delivered"],
            "lag_events": s["lag_events"],
            "lag_ms": s["lag_ms"],
        }
        for s in streams
    ]
    show(streams, as_json, lambda: print_table(rows, list(rows[0]) if rows else []))


@app.command("show")
def show_stream(
    name: str, as_json: AsJson = False, url: Url = DEFAULT_URL, token: Token = None
) -> None:
    """A stream's configuration and its consumers: state, checkpoint, lag, what they pin."""
    with connect(url, token) as client:
        stats = client.stream_stats(name)
    show(stats, as_json, lambda: _render(stats))


def _render(stats: dict[str, Any]) -> None:
    print_fields(stats["config"], title=f"stream {stats['name']}")
    print_table(
        stats["consumers"],
        sorted({k for c in stats["consumers"] for k in c}, key=_consumer_order),
        title="consumers",
    )


def _consumer_order(key: str) -> tuple[int, str]:
    first = ("name", "state", "checkpoint", "delivered", "lag_events", "lag_ms")
    return (first.index(key), key) if key in first else (len(first), key)


@app.command("put")
def put_stream(
    name: str,
    config: Annotated[str, typer.Argument(help="The stream's settings as JSON.")],
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Create a stream, or reconfigure it live (consumers lose no event)."""
    with connect(url, token) as client:
        print_json(client.put_stream(name, json.loads(config)))


@app.command()
def delete(name: str, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Delete a stream and its checkpoints."""
    with connect(url, token) as client:
        print_json(client.delete_stream(name))
