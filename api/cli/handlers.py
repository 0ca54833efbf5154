"""``kvdb handlers``: the event bus's handlers and their delivery figures."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ..client import DEFAULT_URL
from .common import AsJson, Token, Url, connect, print_fields, print_json, print_table, show

__all__ = ["app"]

app = typer.Typer(
    help="Event-bus handlers: list, show, put, delete (replay: kvdb replay --handler)."
)

_COLUMNS = ("name", "kind", "delivered", "failed", "retried", "dead_lettered", "lag_events")


def _row(handler: dict[str, Any]) -> dict[str, Any]:
    stats = handler.get("stats", {})
    kind = next((k for k in ("webhook", "log", "python", "function") if k in handler), None)
    return {"name": handler["name"], "kind": handler.get("kind", kind), **stats}


@app.command("list")
def list_handlers(as_json: AsJson = False, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Every handler with its stats."""
    with connect(url, token) as client:
        handlers = client.handlers()
    show(handlers, as_json, lambda: print_table([_row(h) for h in handlers], _COLUMNS))


@app.command("show")
def show_handler(
    name: str, as_json: AsJson = False, url: Url = DEFAULT_URL, token: Token = None
) -> None:
    """One handler: its definition and stats."""
    with connect(url, token) as client:
        handler = client.handler(name)

    def render() -> None:
        print_fields({k: v for k, v in handler.items() if k != "stats"}, title=f"handler {name}")
        print_fields(handler.get("stats", {}), title="stats")

    show(handler, as_json, render)


@app.command("put")
def put_handler(
    name: str,
    spec: Annotated[str, typer.Argument(help="The handler as JSON (the YAML section's shape).")],
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Add a handler or replace it (a replacement continues from the old checkpoint)."""
    with connect(url, token) as client:
        print_json(client.put_handler(name, json.loads(spec)))


@app.command()
def delete(name: str, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Remove a handler and its checkpoint (its dead letters stay until purged)."""
    with connect(url, token) as client:
        print_json(client.delete_handler(name))
