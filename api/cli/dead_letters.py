"""``kvdb dead-letters``: deliveries that failed every retry; inspect, re-drive, purge."""

from __future__ import annotations

from typing import Annotated

import typer

from ..client import DEFAULT_URL
from .common import (
    AsJson,
    Token,
    Url,
    connect,
    print_fields,
    print_json,
    print_table,
    progress_bar,
    show,
    timestamp,
)

__all__ = ["app"]

app = typer.Typer(help="Dead letters: list, show, re-drive, delete, purge.")

Handler = Annotated[str | None, typer.Option(help="Only this handler's dead letters.")]


def _dead_letter_id(letter_id: str) -> tuple[str, int]:
    handler, _, seq = letter_id.rpartition("/")
    if not handler or not seq.isdigit():
        raise typer.BadParameter(f"expected HANDLER/SEQ, got {letter_id!r}")
    return handler, int(seq)


LetterId = Annotated[str, typer.Argument(help="The dead letter's id: HANDLER/SEQ.")]


@app.command("list")
def list_dead_letters(
    handler: Handler = None,
    limit: Annotated[int, typer.Option(help="At most this many (oldest first).")] = 100,
    after: Annotated[str | None, typer.Option(help="Resume after this id.")] = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """A page of dead letters, oldest first; the next page's --after is printed last."""
    with connect(url, token) as client:
        page = client.dead_letters(handler, after=after, limit=min(limit, 1000))
    rows = [
        {**letter, "last_failed": timestamp(letter.get("last_failed_ms"))}
        for letter in page["dead_letters"]
    ]

    def render() -> None:
        print_table(rows, ["id", "events", "keys", "attempts", "last_failed", "error"])
        if page["next"]:
            print(f"more: --after {page['next']}")

    show(page, as_json, render)


@app.command("show")
def show_dead_letter(
    letter_id: LetterId, as_json: AsJson = False, url: Url = DEFAULT_URL, token: Token = None
) -> None:
    """One dead letter: its events, error and attempts."""
    with connect(url, token) as client:
        letter = client.dead_letter(*_dead_letter_id(letter_id))

    def render() -> None:
        print_fields({k: v for k, v in letter.items() if k != "events"}, title=letter["id"])
        print_table(letter["events"], ["seq", "type", "key", "old_value", "new_value"])

    show(letter, as_json, render)


@app.command()
def redrive(
    letter_id: Annotated[
        str | None, typer.Argument(help="HANDLER/SEQ; omit to re-drive many.")
    ] = None,
    handler: Handler = None,
    limit: Annotated[int, typer.Option(help="At most this many, when re-driving many.")] = 100,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Deliver dead letters to their handler once more (kept, with the new error, if they
    fail again)."""
    with connect(url, token) as client:
        if letter_id is not None:
            outcome = client.redrive(*_dead_letter_id(letter_id))
            show(outcome, as_json, lambda: print_fields(outcome))
            if not outcome.get("redriven"):
                raise typer.Exit(1)
            return
        total = sum(
            count
            for name, count in client.dead_letters(handler, limit=1)["counts"].items()
            if handler is None or name == handler
        )
        results: list[dict[str, object]] = []
        with progress_bar("re-driving", min(total, limit), unit="dead letters") as advance:
            while len(results) < limit:
                asked = min(limit - len(results), 100)
                doc = client.redrive_all(handler, limit=asked)
                results.extend(doc["results"])
                advance(len(doc["results"]))
                if doc["failed"] or len(doc["results"]) < asked:
                    break  # a failing handler keeps the rest; or there are no more
    redriven = sum(1 for r in results if r.get("redriven"))
    summary = {"redriven": redriven, "failed": len(results) - redriven, "results": results}
    show(
        summary, as_json, lambda: print(f"re-driven: {redriven}; failed: {len(results) - redriven}")
    )
    if redriven < len(results):
        raise typer.Exit(1)


@app.command()
def delete(letter_id: LetterId, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Delete one dead letter."""
    with connect(url, token) as client:
        print_json(client.delete_dead_letter(*_dead_letter_id(letter_id)))


@app.command()
def purge(
    handler: Handler = None,
    all_: Annotated[bool, typer.Option("--all", help="Purge every handler's.")] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Delete the dead letters of --handler, or of every handler with --all."""
    if handler is None and not all_:
        raise typer.BadParameter("say which: --handler NAME, or --all", param_hint="--handler")
    with connect(url, token) as client:
        print_json({"purged": client.purge_dead_letters(handler)})
