"""``kvdb replay``: deliver a stretch of the change log again, into a handler or a route,
in pages of ``--page`` selected events with a progress bar; ``--dry-run`` lists instead."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

import typer

from ..client import DEFAULT_URL
from .common import AsJson, Token, Url, connect, print_json, print_table, progress_bar
from .keys import EventTypeName

__all__ = ["replay"]


def replay(
    handler: Annotated[str | None, typer.Option(help="Replay into this handler.")] = None,
    route: Annotated[str | None, typer.Option(help="Replay into this route's handlers.")] = None,
    from_seq: Annotated[int | None, typer.Option(help="First seq (inclusive).")] = None,
    to_seq: Annotated[int | None, typer.Option(help="Last seq (inclusive; default: head).")] = None,
    from_ts: Annotated[int | None, typer.Option(help="From commit time, ms (inclusive).")] = None,
    to_ts: Annotated[int | None, typer.Option(help="To commit time, ms (exclusive).")] = None,
    type: Annotated[
        list[EventTypeName] | None, typer.Option(help="Only this event type; may repeat.")
    ] = None,
    pattern: Annotated[
        list[str] | None, typer.Option(help="Only keys matching (RE2, whole key); may repeat.")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Deliver nothing; list what would go.")] = False,
    ignore_routes: Annotated[
        bool,
        typer.Option(
            help="With --handler: every selected event, not only what its routes send it."
        ),
    ] = False,
    page: Annotated[int, typer.Option(help="Selected events per request.")] = 10_000,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Replay a seq range (or a time range) of the log into a handler or a route."""
    if (handler is None) == (route is None):
        raise typer.BadParameter("give --handler or --route (one of them)", param_hint="--handler")
    if from_seq is None and to_seq is None and from_ts is None and to_ts is None:
        from_seq = 1
    request: dict[str, Any] = {
        "handler": handler, "route": route, "to_seq": to_seq, "from_ts": from_ts,
        "to_ts": to_ts, "event_types": [t.value for t in type or ()] or None,
        "key_patterns": pattern or None, "dry_run": dry_run or None, "limit": page,
        "ignore_routes": ignore_routes or None,
    }  # fmt: skip
    pages: list[dict[str, Any]] = []
    with connect(url, token, timeout=300) as client:
        by_seq = from_ts is None and to_ts is None
        last = to_seq if to_seq is not None else client.health()["last_seq"]
        total = max(0, last - (from_seq or 1) + 1) if by_seq else None
        with progress_bar("replaying", total, unit="events") as advance:
            position = from_seq
            while True:
                doc = client.replay(**request, from_seq=position)
                pages.append(doc)
                advance(doc["scanned"])
                position = doc["next_seq"]
                if position is None or not by_seq:
                    break
    summary = _summary(pages, dry_run)
    if as_json:
        print_json(summary)
        return
    if dry_run:
        print_table(summary["events"][:50], ["seq", "type", "key", "handlers"], title="sample")
    counts = summary["would_deliver" if dry_run else "delivered"]
    print(
        f"scanned {summary['scanned']}, selected {summary['selected']}, "
        + ("would deliver " if dry_run else "delivered ")
        + (", ".join(f"{n} to {h}" for h, n in counts.items()) or "nothing")
        + (f"; dead-lettered {summary['dead_lettered']}" if summary.get("dead_lettered") else "")
    )


def _summary(pages: list[dict[str, Any]], dry_run: bool) -> dict[str, Any]:
    delivered: Counter[str] = Counter()
    dead: Counter[str] = Counter()
    events: list[Any] = []
    for doc in pages:
        delivered.update(doc.get("would_deliver" if dry_run else "delivered", {}))
        dead.update(doc.get("dead_lettered", {}))
        events.extend(doc.get("events", []))
    summary: dict[str, Any] = {
        "dry_run": dry_run,
        "from_seq": pages[0]["from_seq"],
        "through_seq": pages[-1]["through_seq"],
        "scanned": sum(doc["scanned"] for doc in pages),
        "selected": sum(doc["selected"] for doc in pages),
    }
    if dry_run:
        return {**summary, "would_deliver": dict(delivered), "events": events}
    return {**summary, "delivered": dict(delivered), "dead_lettered": dict(dead)}
