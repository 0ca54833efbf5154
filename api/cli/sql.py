"""``kvdb sql``: a SQL shell in the manner of Flink's SQL client.

At a terminal it reads statements with line editing and history (readline; the history is
kept in ``~/.kvdb_sql_history``), a statement running on when a line does not end it: a
statement ends with ``;`` outside quotes and comments. Each statement runs with ``POST /sql``
and its result prints as a table. ``-f FILE`` (or a pipe on standard input) runs a script.
Shell commands: ``HELP;``, ``QUIT;`` (or ``EXIT;``, Ctrl-D), ``RESULTS <pipeline>;``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from ..client import DEFAULT_URL, Client, ClientError
from .common import Token, Url, connect, err, out, print_json, print_table

__all__ = ["StatementSplitter", "sql"]

PROMPT = "kvdb sql> "
CONTINUATION = "       -> "
HELP = """Statements end with ';' and may span lines. Examples:
  CREATE STREAM bids (bidtime TIMESTAMP, price DOUBLE, WATERMARK FOR bidtime AS
      bidtime - INTERVAL '5' SECOND) WITH (key_pattern = 'bids/.*');
  CREATE PIPELINE revenue AS SELECT window_start, SUM(price) AS revenue
      FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '1' MINUTES))
      GROUP BY window_start, window_end EMIT CHANGES;
  SHOW PIPELINES;  SHOW STREAMS;  DROP PIPELINE revenue;
Shell commands: RESULTS <pipeline>;  HELP;  QUIT;"""


class StatementSplitter:
    """Feeds text in and takes complete statements out: ``;`` ends a statement unless it is
    inside '...' or "..." (doubled quotes escape), a ``--`` comment or a ``/* */`` comment."""

    def __init__(self) -> None:
        self._buffer: list[str] = []
        self._quote: str | None = None
        self._block_comment = False

    @property
    def pending(self) -> bool:
        """True when a statement has begun but not ended."""
        return bool("".join(self._buffer).strip())

    def feed(self, text: str) -> list[str]:
        statements = []
        i = 0
        current = self._buffer
        while i < len(text):
            char = text[i]
            pair = text[i : i + 2]
            if self._block_comment:
                if pair == "*/":
                    self._block_comment = False
                    current.append(pair)
                    i += 2
                    continue
            elif self._quote is not None:
                if char == self._quote:
                    self._quote = None
            elif char in "'\"":
                self._quote = char
            elif pair == "--":
                end = text.find("\n", i)
                end = len(text) if end == -1 else end
                current.append(text[i:end])
                i = end
                continue
            elif pair == "/*":
                self._block_comment = True
                current.append(pair)
                i += 2
                continue
            elif char == ";":
                statement = "".join(current).strip()
                if statement:
                    statements.append(statement)
                current.clear()
                i += 1
                continue
            current.append(char)
            i += 1
        return statements

    def rest(self) -> str | None:
        """What remains unterminated (a script's last statement may omit its ';')."""
        statement = "".join(self._buffer).strip()
        self._buffer.clear()
        return statement or None


def sql(
    file: Annotated[
        Path | None, typer.Option("-f", "--file", help="Run this script and exit.", exists=True)
    ] = None,
    execute: Annotated[
        str | None, typer.Option("-e", "--execute", help="Run these statements and exit.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """An interactive SQL shell (at a terminal), or run a script (-f FILE, -e, or a pipe)."""
    with connect(url, token, timeout=60) as client:
        shell = _Shell(client, as_json)
        if file is not None or execute is not None or not sys.stdin.isatty():
            script = (
                execute
                if execute is not None
                else file.read_text()
                if file is not None
                else sys.stdin.read()
            )
            if not shell.run_script(script):
                raise typer.Exit(1)
            return
        shell.interact()


class _Shell:
    def __init__(self, client: Client, as_json: bool) -> None:
        self.client = client
        self.as_json = as_json

    def run_script(self, script: str) -> bool:
        """Run every statement in order; stop at the first that fails."""
        splitter = StatementSplitter()
        statements = splitter.feed(script)
        rest = splitter.rest()
        if rest:
            statements.append(rest)
        return all(self.run(statement) for statement in statements)

    def run(self, statement: str) -> bool:
        words = statement.split()
        command = words[0].upper() if words else ""
        try:
            if command in ("QUIT", "EXIT") and len(words) == 1:
                raise EOFError
            if command == "HELP" and len(words) == 1:
                out().print(HELP, highlight=False)
            elif command == "RESULTS" and len(words) == 2:
                self._show_results(words[1])
            else:
                for result in self.client.sql(statement + ";"):
                    self._show(result)
        except ClientError as exc:
            where = ""
            if "line" in exc.body and not exc.message.startswith("line"):
                where = f" (line {exc.body['line']}, column {exc.body.get('column', '?')})"
            err().print(f"[red]error[/red]{where}: {exc.message}", highlight=False)
            return False
        return True

    def _show(self, result: dict[str, Any]) -> None:
        if self.as_json:
            print_json(result)
        elif result.get("columns") is not None:
            print_table(result.get("rows") or [], result["columns"], empty="(empty)")
        else:
            action = result.get("action") or "done"
            name = f" {result['name']}" if result.get("name") else ""
            out().print(f"[green]{action}[/green]{name}", highlight=False)

    def _show_results(self, name: str) -> None:
        table = self.client.pipeline_results(name.rstrip(";"))
        if self.as_json:
            print_json(table)
        else:
            print_table(table["rows"], table["columns"], empty="(no rows yet)")

    def interact(self) -> None:
        out().print(
            f"kvdb SQL shell on {self.client.url}. Statements end with ';'. HELP; for help, "
            "QUIT; or Ctrl-D to leave.",
            highlight=False,
        )
        splitter = StatementSplitter()
        with _history():
            while True:
                try:
                    line = input(CONTINUATION if splitter.pending else PROMPT)
                except KeyboardInterrupt:  # drop the statement being typed, as psql does
                    print()
                    splitter.rest()
                    continue
                except EOFError:
                    print()
                    return
                try:
                    for statement in splitter.feed(line + "\n"):
                        self.run(statement)
                except EOFError:
                    return


@contextlib.contextmanager
def _history() -> Iterator[None]:
    """readline line editing, with the history kept across sessions."""
    try:
        import readline
    except ImportError:  # pragma: no cover - Python without readline
        yield
        return
    path = Path(os.environ.get("KVDB_SQL_HISTORY", Path.home() / ".kvdb_sql_history"))
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(1000)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            readline.write_history_file(path)
