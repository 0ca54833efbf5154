"""``kvdb routes``: the event bus's routes, highest priority first."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..client import DEFAULT_URL
from .common import AsJson, Token, Url, connect, print_fields, print_json, print_table, show

__all__ = ["app"]

app = typer.Typer(help="Event-bus routes: list (by priority), show, put, delete.")

_COLUMNS = ("priority", "name", "key_patterns", "event_types", "handler_names", "final", "stored")


@app.command("list")
def list_routes(as_json: AsJson = False, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Routes in the order they are consulted: highest priority first."""
    with connect(url, token) as client:
        routes = client.routes()
    show(routes, as_json, lambda: print_table(routes, _COLUMNS))


@app.command("show")
def show_route(
    name: str, as_json: AsJson = False, url: Url = DEFAULT_URL, token: Token = None
) -> None:
    """One route."""
    with connect(url, token) as client:
        route = client.route(name)
    show(route, as_json, lambda: print_fields(route, title=f"route {name}"))


@app.command("put")
def put_route(
    name: str,
    spec: Annotated[str, typer.Argument(help="The route as JSON (the YAML section's shape).")],
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Add a route or replace it."""
    with connect(url, token) as client:
        print_json(client.put_route(name, json.loads(spec)))


@app.command()
def delete(name: str, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Remove a route."""
    with connect(url, token) as client:
        print_json(client.delete_route(name))
