"""What every client command shares: the ``--url``/``--token``/``--json`` options, the
connection, and output as JSON (for scripts) or aligned tables (for people)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from kvdb import Version

from ..client import DEFAULT_URL, Client

__all__ = [
    "AsJson",
    "IfVersion",
    "Token",
    "Url",
    "connect",
    "err",
    "format_cell",
    "out",
    "print_json",
    "print_table",
    "progress_bar",
    "show",
]

Url = Annotated[
    str,
    typer.Option("--url", envvar="KVDB_URL", help="The node's URL.", rich_help_panel="Connection"),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="KVDB_TOKEN",
        help="Bearer token, when the node has tokens.",
        rich_help_panel="Connection",
    ),
]


def parse_version(text: str) -> Version:
    try:
        return Version.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


IfVersion = Annotated[
    Version | None,
    typer.Option(
        parser=parse_version,
        metavar="VERSION",
        help="Only if the current version is this one ('<hlc>.<origin>', as read).",
    ),
]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print JSON (for scripts) instead of a table.")
]
DEFAULT = DEFAULT_URL


def out() -> Console:
    """Standard output: tables at the terminal's width, or wide enough when piped."""
    return Console(width=None if sys.stdout.isatty() else 200, soft_wrap=False)


def err() -> Console:
    return Console(stderr=True, width=None if sys.stderr.isatty() else 200, soft_wrap=True)


@contextmanager
def connect(url: str, token: str | None, *, timeout: float = 30.0) -> Iterator[Client]:
    with Client(url, token=token, timeout=timeout) as client:
        yield client


def print_json(doc: Any) -> None:
    print(json.dumps(doc, ensure_ascii=False, default=str), flush=True)


def format_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, list | tuple):
        return ", ".join(format_cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def timestamp(ms: float | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    title: str | None = None,
    empty: str = "(none)",
) -> None:
    """Rows as an aligned table; numbers right-aligned."""
    console = out()
    if not rows:
        console.print(f"{title + ': ' if title else ''}{empty}", highlight=False)
        return
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        numeric = all(isinstance(r.get(column), int | float) for r in rows if r.get(column))
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        table.add_row(*(format_cell(row.get(column)) for column in columns))
    console.print(table)


def print_fields(doc: dict[str, Any], *, title: str | None = None) -> None:
    """A document as a two-column table of field and value."""
    console = out()
    table = Table(title=title, title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in doc.items():
        table.add_row(key, format_cell(value))
    console.print(table)


def show(doc: Any, as_json: bool, render: Callable[[], None]) -> None:
    """``doc`` as JSON with ``--json``, else as ``render`` draws it."""
    if as_json:
        print_json(doc)
    else:
        render()


@contextmanager
def progress_bar(
    description: str, total: int | None, *, unit: str = "items"
) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (hidden when stderr is not a terminal); yields ``advance(n)``."""
    if unit == "bytes":
        columns: list[Any] = [DownloadColumn(), TransferSpeedColumn()]
    else:
        columns = [MofNCompleteColumn() if total else TextColumn("{task.completed:,} " + unit)]
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        *columns,
        TimeElapsedColumn(),
        console=err(),
        transient=False,
        disable=not sys.stderr.isatty(),
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
