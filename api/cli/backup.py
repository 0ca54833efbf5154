"""``kvdb backup`` and ``kvdb restore``: a consistent online snapshot of a running node,
saved over HTTP, and a data directory built from one (with a new store epoch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kvdb.backup import read_backup_info, restore_backup

from ..client import DEFAULT_URL
from .common import AsJson, Token, Url, connect, print_fields, progress_bar, show

__all__ = ["backup", "restore"]


def backup(
    file: Annotated[Path, typer.Argument(help="Where to save the snapshot.", dir_okay=False)],
    force: Annotated[bool, typer.Option(help="Overwrite FILE if it exists.")] = False,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Save a consistent snapshot of a running node (writes go on meanwhile); needs an admin
    token when the node has tokens."""
    if file.exists() and not force:
        raise typer.BadParameter(f"{file} exists; pass --force to overwrite it", param_hint="FILE")
    # The compacted copy's size is not known beforehand: the bar counts bytes.
    with (
        connect(url, token, timeout=300) as client,
        progress_bar(f"backing up to {file}", None, unit="bytes") as advance,
    ):
        result = client.backup(file, progress=advance)
    info = read_backup_info(file)  # the saved file opens and holds what the server said
    if info.seq != result.seq:
        raise typer.BadParameter(f"{file} holds seq {info.seq}, the node sent {result.seq}")
    doc = {**result.to_dict(), "file": str(file)}
    show(doc, as_json, lambda: print_fields(doc, title="backup saved"))


def restore(
    file: Annotated[Path, typer.Argument(help="A file saved by kvdb backup.", exists=True)],
    data_dir: Annotated[
        Path, typer.Option(help="The new data directory (must not exist, or be empty).")
    ],
    as_json: AsJson = False,
) -> None:
    """Build a data directory from a backup, for kvdb serve --data-dir. The restored store has
    the same keys, versions, change log and checkpoints, and a new store epoch."""
    with progress_bar(f"restoring {file}", file.stat().st_size, unit="bytes") as advance:
        info = restore_backup(file, data_dir, progress=advance)
    doc = {**info.to_dict(), "data_dir": str(data_dir)}
    show(doc, as_json, lambda: print_fields(doc, title="restored"))
