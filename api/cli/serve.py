"""``kvdb serve``: run a node."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kvdb import Durability

from ..settings import load_settings

__all__ = ["serve"]


def serve(
    config: Annotated[
        Path | None, typer.Option(help="YAML config file (see config/kvdb.yaml).")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="LMDB data directory.")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (0 picks a free one).")
    ] = None,
    node_id: Annotated[
        str | None, typer.Option(help="This node's id (default: generated once, then kept).")
    ] = None,
    durability: Annotated[
        Durability | None, typer.Option(case_sensitive=False, help="Commit durability.")
    ] = None,
    access_log: Annotated[
        bool | None, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = None,
    allow_unauthenticated_remote: Annotated[
        bool | None,
        typer.Option(
            "--allow-unauthenticated-remote",
            help="Allow a non-loopback address without tokens (trusted networks only).",
        ),
    ] = None,
) -> None:
    """Run a node (default: ./kvdb-data on 127.0.0.1:8080); the console is at /ui."""
    from ..server.run import serve as run  # uvicorn is only needed here

    settings = load_settings(
        config,
        overrides={
            "node": {
                "data_dir": data_dir,
                "id": node_id,
                "durability": durability.value if durability else None,
            },
            "server": {
                "host": host,
                "port": port,
                "access_log": access_log,
                "allow_unauthenticated_remote": allow_unauthenticated_remote,
            },
        },
    )
    run(settings)
