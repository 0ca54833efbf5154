"""Re-driving dead letters: delivering them to their handler once more, on demand."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from changestream import Clock

from .dead_letters import DeadLetterStore, describe_error
from .errors import UnknownDeadLetter, UnknownHandler
from .runner import HandlerRunner

__all__ = ["RedriveOutcome", "redrive", "redrive_all"]


@dataclass(frozen=True)
class RedriveOutcome:
    id: str
    redriven: bool
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "redriven": self.redriven, "error": self.error}


async def redrive(
    dead_letters: DeadLetterStore,
    runners: Mapping[str, HandlerRunner],
    clock: Clock,
    handler: str,
    seq: int,
) -> RedriveOutcome:
    """Deliver a dead letter to its handler again, once: handled, it is removed; failed,
    it stays with the new error and one more attempt."""
    letter = dead_letters.get(handler, seq)
    if letter is None:
        raise UnknownDeadLetter(handler, seq)
    runner = runners.get(handler)
    if runner is None:
        raise UnknownHandler(handler)
    error = await runner.deliver_once(letter.events)
    if error is None:
        await dead_letters.delete(handler, seq)
        return RedriveOutcome(letter.id, True)
    failed = letter.failed_again(describe_error(error), clock.now_ms())
    await dead_letters.add(failed)
    return RedriveOutcome(letter.id, False, failed.error)


async def redrive_all(
    dead_letters: DeadLetterStore,
    runners: Mapping[str, HandlerRunner],
    clock: Clock,
    handler: str | None,
    limit: int,
) -> list[RedriveOutcome]:
    """Re-drive up to ``limit`` dead letters (of ``handler``), oldest first. After a
    handler's first failure its remaining letters are left alone (its cause is likely not
    fixed yet)."""
    ids, _ = dead_letters.ids(handler, limit=limit)
    outcomes: list[RedriveOutcome] = []
    failing: set[str] = set()
    for name, seq in ids:
        if name in failing or name not in runners:
            continue
        outcome = await redrive(dead_letters, runners, clock, name, seq)
        outcomes.append(outcome)
        if not outcome.redriven:
            failing.add(name)
    return outcomes
