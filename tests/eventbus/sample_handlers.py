"""Functions that ``python`` handler specs import by path in the tests."""

from __future__ import annotations

from kvdb import ChangeEvent

SEEN: list[int] = []
BATCHES: list[list[int]] = []
NOT_A_FUNCTION = 42


def on_event(event: ChangeEvent) -> None:
    SEEN.append(event.seq)


async def on_batch(events: list[ChangeEvent]) -> None:
    BATCHES.append([event.seq for event in events])


class Namespace:
    @staticmethod
    def nested(event: ChangeEvent) -> None:
        SEEN.append(-event.seq)


FRAGILE = {"broken": True}


def fragile(event: ChangeEvent) -> None:
    """Fails on keys starting with ``bad`` while ``FRAGILE["broken"]``."""
    if FRAGILE["broken"] and event.key.startswith("bad"):
        raise ValueError(f"cannot handle {event.key}")
    SEEN.append(event.seq)
