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


_TARGET_COLUMNS = [
    "processor", "target", "state", "endpoint", "checkpoint", "lag_events", "lag_ms",
    "sent", "applied", "skipped", "conflicts", "retries", "failovers", "last_error",
]  # fmt: skip


def _render_status(doc: dict[str, Any]) -> None:
    print_fields(
        {k: doc.get(k) for k in ("node_id", "epoch", "last_seq", "conflicts")}, title="sync"
    )
    rows = [
        {"processor": processor["name"], "target": target["node_id"], **target}
        for processor in doc.get("processors", [])
        for target in processor.get("targets", [])
    ]
    if rows:
        print_table(rows, _TARGET_COLUMNS, title="targets")
    else:
        print("no sync processors on this node (sync: in its YAML, or POST /sync/processors)")
    if doc.get("inbound"):
        print_table(doc["inbound"], ["source", "epoch", "checkpoint", "updated"], title="inbound")


def _versions(row: dict[str, Any]) -> str:
    marks = (v["version"] + (" (deleted)" if v["deleted"] else "") for v in row["versions"])
    return " vs ".join(marks)


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
    rows = [{**row, "versions": _versions(row)} for row in doc.get("conflicts", [])]
    columns = ["seq", "id", "key", "versions", "winner", "policy", "detected_ms"]
    show(doc, as_json, lambda: print_table(rows, columns, title="conflicts"))
