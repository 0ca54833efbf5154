"""``kvdb dump`` and ``kvdb load``: keys as JSON lines (key, value, content type; base64 for
binary values), for moving data between systems. Both stream, with progress."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..client import DEFAULT_URL
from .common import Token, Url, connect, progress_bar

__all__ = ["dump", "load"]


def dump(
    file: Annotated[
        Path | None, typer.Argument(help="Write here (default: standard output).")
    ] = None,
    prefix: Annotated[str | None, typer.Option(help="Only keys starting with this.")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Write every key as a JSON line."""
    with connect(url, token) as client:
        total = None if prefix else client.stats().get("records")  # tombstones included
        with progress_bar("dumping", total, unit="keys") as advance:
            if file is None:
                count = client.dump(sys.stdout, prefix=prefix, progress=advance)
            else:
                with file.open("w", encoding="utf-8") as out:
                    count = client.dump(out, prefix=prefix, progress=advance)
    print(f"dumped {count} keys", file=sys.stderr)


def load(
    file: Annotated[Path, typer.Argument(help="A dump ('-' reads standard input).")],
    batch_size: Annotated[int, typer.Option(help="Keys per atomic batch.")] = 500,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Put the keys of a dump, in atomic batches."""
    with connect(url, token, timeout=120) as client:
        if str(file) == "-":
            count = client.load(sys.stdin, batch_size=batch_size)
        else:
            with (
                file.open("rb") as lines,
                progress_bar(f"loading {file}", file.stat().st_size, unit="bytes") as advance,
            ):
                count = client.load(lines, batch_size=batch_size, progress=advance)
    print(f"loaded {count} keys", file=sys.stderr)
