"""``kvdb pipelines``: stream-computing pipelines, their figures and result tables."""

from __future__ import annotations

from typing import Annotated

import typer

from ..client import DEFAULT_URL
from .common import AsJson, Token, Url, connect, print_fields, print_json, print_table, show

__all__ = ["app"]

app = typer.Typer(help="Pipelines: list, show, results, delete (create them with kvdb sql).")

_COLUMNS = (
    "name", "status", "events_in", "windows_fired", "late_dropped", "lag_events", "watermark",
)  # fmt: skip


@app.command("list")
def list_pipelines(as_json: AsJson = False, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Every pipeline with its figures."""
    with connect(url, token) as client:
        pipelines = client.pipelines()
    show(pipelines, as_json, lambda: print_table(pipelines, _COLUMNS))


@app.command("show")
def show_pipeline(
    name: str, as_json: AsJson = False, url: Url = DEFAULT_URL, token: Token = None
) -> None:
    """One pipeline: figures, and its SQL if it has some."""
    with connect(url, token) as client:
        pipeline = client.pipeline(name)
    show(pipeline, as_json, lambda: print_fields(pipeline, title=f"pipeline {name}"))


@app.command()
def results(
    name: str,
    limit: Annotated[int | None, typer.Option(help="Print at most this many rows.")] = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """The pipeline's results table: a row per group key and window."""
    with connect(url, token) as client:
        table = client.pipeline_results(name)
    rows = table["rows"][:limit] if limit is not None else table["rows"]
    show(table, as_json, lambda: print_table(rows, table["columns"], empty="(no rows yet)"))


@app.command()
def delete(name: str, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Stop a pipeline and delete its state (a SQL pipeline's definition too)."""
    with connect(url, token) as client:
        print_json(client.delete_pipeline(name))
