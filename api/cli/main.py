"""The ``kvdb`` command: ``serve`` runs a node; the other commands talk to one over HTTP
(``--url``/``KVDB_URL``, ``--token``/``KVDB_TOKEN``), except ``restore``, which builds a data
directory locally. Built on typer (click) and rich; one module per command group.

Exit status: 0 on success, 1 when the key is not found or the server reports an error, 2 for
bad usage or configuration, 130 when interrupted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from kvdb import KvdbError

from ..client import ClientError, WatchError
from ..errors import ConfigError
from . import dead_letters, handlers, pipelines, routes, streams, sync
from .backup import backup, restore
from .keys import delete, get, put, scan, watch
from .replay import replay
from .serve import serve
from .sql import sql
from .stats import stats
from .transfer import dump, load

__all__ = ["app", "main"]

# typer's click errors (a vendored click in recent typer releases), found without naming it.
_UsageError: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)
_ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)

app = typer.Typer(
    name="kvdb",
    help="kvdb: a key-value database whose every write is a change event.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version() -> str:
    try:
        return version("kvdb")
    except PackageNotFoundError:  # pragma: no cover - a tree that is not installed
        return "0+unknown"


def _print_version(value: bool) -> None:
    if value:
        print(f"kvdb {_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """kvdb: a key-value database whose every write is a change event. The web console is at
    http://HOST:PORT/ui."""


_NODE = "Node"
_KEYS = "Keys and changes"
_ADMIN = "Streams, bus, pipelines, sync"
_DATA = "Backup and data"
app.command(rich_help_panel=_NODE)(serve)
app.command(rich_help_panel=_NODE)(stats)
for key_command in (put, get, delete, scan, watch):
    app.command(rich_help_panel=_KEYS)(key_command)
app.add_typer(streams.app, name="streams", rich_help_panel=_ADMIN)
app.add_typer(handlers.app, name="handlers", rich_help_panel=_ADMIN)
app.add_typer(routes.app, name="routes", rich_help_panel=_ADMIN)
app.add_typer(dead_letters.app, name="dead-letters", rich_help_panel=_ADMIN)
app.command(rich_help_panel=_ADMIN)(replay)
app.add_typer(pipelines.app, name="pipelines", rich_help_panel=_ADMIN)
app.command(rich_help_panel=_ADMIN)(sql)
app.add_typer(sync.app, name="sync", rich_help_panel=_ADMIN)
for data_command in (backup, restore, dump, load):
    app.command(rich_help_panel=_DATA)(data_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (usage errors exit with 2)."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(
            args=args,
            prog_name="kvdb",
            standalone_mode=False,
        )
    except _UsageError as exc:
        exc.show()  # type: ignore[attr-defined]
        raise SystemExit(2) from None
    except _ClickException as exc:
        exc.show()  # type: ignore[attr-defined]
        return int(exc.exit_code)  # type: ignore[attr-defined]
    except ConfigError as exc:
        print(f"kvdb: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except (ClientError, KvdbError, WatchError) as exc:
        print(f"kvdb: {_explain(exc, args)}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, typer.Abort):
        return 130
    except BrokenPipeError:
        # The reader went away (`kvdb scan | head -1`): stop quietly, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return result if isinstance(result, int) else 0


def _explain(exc: Exception, args: list[str]) -> str:
    """The error for a person at the command line: a token is passed with ``--token`` (or
    ``KVDB_TOKEN``), not as the header the server's message names."""
    code = exc.code if isinstance(exc, ClientError) else None
    status = exc.status if isinstance(exc, ClientError) else None
    if code == "unauthorized" or status == 401:
        given = any(a == "--token" or a.startswith("--token=") for a in args)
        given = given or bool(os.environ.get("KVDB_TOKEN"))
        return (
            "unauthorized: this node requires a token, and "
            + ("the one given is not one of its tokens" if given else "none was given")
            + ": pass --token TOKEN or set KVDB_TOKEN"
        )
    if code == "forbidden" or status == 403:
        message = exc.message if isinstance(exc, ClientError) else str(exc)
        return f"forbidden: {message}: pass a token with that role (--token or KVDB_TOKEN)"
    return str(exc)
