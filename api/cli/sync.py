"""``kvdb sync``: replication status and conflicts (``GET /sync/status``, ``/sync/conflicts``).
A node without replication says so plainly."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from ..client import DEFAULT_URL, NoReplication
from .common import AsJson, Token, Url, connect, print_fields, print_table, show

__all__ = ["app"]

app = typer.Typer(help="Replication: status of the targets, and recorded conflicts.")


def _no_replication(exc: NoReplication) -> typer.Exit:
    print(f"kvdb: {exc.message}", file=sys.stderr)
    return typer.Exit(1)


@app.command()
def status(as_json: AsJson = False, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Each sync processor's targets: state, checkpoint, lag."""
    with connect(url, token) as client:
        try:
            doc = client.sync_status()
        except NoReplication as exc:
            raise _no_replication(exc) from None
    show(doc, as_json, lambda: _render_status(doc))


def _render_status(doc: dict[str, Any]) -> None:
    scalars = {k: v for k, v in doc.items() if not isinstance(v, list | dict)}
    if scalars:
        print_fields(scalars, title="sync")
    for key, value in doc.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            print_table(value, list(dict.fromkeys(k for row in value for k in row)), title=key)
        elif isinstance(value, dict):
            rows = [
                {"name": name, **(v if isinstance(v, dict) else {"value": v})}
                for name, v in value.items()
            ]
            columns = list(dict.fromkeys(k for row in rows for k in row))
            print_table(rows, columns, title=key)


@app.command()
def conflicts(
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Conflicts replication resolved: key, both versions, the winner."""
    with connect(url, token) as client:
        try:
            doc = client.sync_conflicts(limit=limit)
        except NoReplication as exc:
            raise _no_replication(exc) from None
    rows = doc.get("conflicts", [])
    columns = list(dict.fromkeys(k for row in rows for k in row))
    show(doc, as_json, lambda: print_table(rows, columns, title="conflicts"))
