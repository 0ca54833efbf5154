"""The dead-letter store: deliveries that failed every retry, kept in LMDB until re-driven or
purged.

Layout: one system record per dead letter, key ``bus/dead/<handler>/<seq>`` with ``seq`` (the
first event's) zero-padded to 20 digits, so byte order is (handler, seq) order. The value is
JSON: the events (in their JSON form), the error, the number of attempts and timestamps. A
dead letter's id is ``<handler>/<seq>``; writing the same one again (after a crash made the
bus redeliver it) replaces it rather than adding a copy.

An in-memory index of the ids, loaded at start, answers counts and pages without scanning.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from kvdb import ChangeEvent, Store

__all__ = ["DeadLetter", "DeadLetterStore", "describe_error"]

PREFIX = "bus/dead/"
_PURGE_CHUNK = 1000


def _key(handler: str, seq: int) -> str:
    return f"{PREFIX}{handler}/{seq:020d}"


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class DeadLetter:
    """Events a handler failed on. ``attempts``: deliveries tried in all (retries and re-drives
    included); times are ms since the epoch."""

    handler: str
    events: tuple[ChangeEvent, ...]
    error: str
    attempts: int
    first_failed_ms: float
    last_failed_ms: float

    @property
    def seq(self) -> int:
        return self.events[0].seq

    @property
    def id(self) -> str:
        return f"{self.handler}/{self.seq}"

    def failed_again(self, error: str, now_ms: float) -> DeadLetter:
        return replace(self, error=error, attempts=self.attempts + 1, last_failed_ms=now_ms)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "handler": self.handler,
            "seq": self.seq,
            "last_seq": self.events[-1].seq,
            "events": len(self.events),
            "keys": [event.key for event in self.events[:10]],
            "error": self.error,
            "attempts": self.attempts,
            "first_failed_ms": self.first_failed_ms,
            "last_failed_ms": self.last_failed_ms,
        }

    def to_dict(self) -> dict[str, Any]:
        summary = self.summary()
        del summary["keys"]
        return {**summary, "events": [event.to_json() for event in self.events]}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> DeadLetter:
        return cls(
            handler=doc["handler"],
            events=tuple(ChangeEvent.from_json(event) for event in doc["events"]),
            error=doc["error"],
            attempts=int(doc["attempts"]),
            first_failed_ms=float(doc["first_failed_ms"]),
            last_failed_ms=float(doc["last_failed_ms"]),
        )


class DeadLetterStore:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._index: dict[str, list[int]] = {}

    def load(self) -> None:
        """Build the index from LMDB (once, at start)."""
        index: dict[str, list[int]] = {}
        for key, _ in self._store.list_system_records(PREFIX):
            handler, _, seq = key[len(PREFIX) :].rpartition("/")
            index.setdefault(handler, []).append(int(seq))
        self._index = {handler: sorted(seqs) for handler, seqs in index.items()}

    async def add(self, letter: DeadLetter, *, limit: int | None = None) -> list[int]:
        """Store ``letter`` (replacing one with the same id). With ``limit``, the handler's
        oldest letters beyond it are deleted in the same transaction; returns their seqs."""
        handler, seq = letter.handler, letter.seq
        seqs = self._index.get(handler, [])
        count = len(seqs) + (_position(seqs, seq) is None)
        excess = 0 if limit is None else count - limit
        evicted = [old for old in seqs[: max(excess, 0)] if old != seq]
        record = orjson.dumps(letter.to_dict())
        await self._store.write_system_state(
            {_key(handler, seq): record}, [_key(handler, old) for old in evicted]
        )
        seqs = self._index.setdefault(handler, [])  # as it is now, after the write
        if _position(seqs, seq) is None:
            bisect.insort(seqs, seq)
        self._forget(handler, evicted)
        return evicted

    def get(self, handler: str, seq: int) -> DeadLetter | None:
        raw = self._store.get_system_record(_key(handler, seq))
        return None if raw is None else DeadLetter.from_dict(orjson.loads(raw))

    def count(self, handler: str | None = None) -> int:
        if handler is not None:
            return len(self._index.get(handler, ()))
        return sum(len(seqs) for seqs in self._index.values())

    def counts(self) -> dict[str, int]:
        return {handler: len(seqs) for handler, seqs in sorted(self._index.items()) if seqs}

    def ids(
        self, handler: str | None = None, *, after: tuple[str, int] | None = None, limit: int = 100
    ) -> tuple[list[tuple[str, int]], tuple[str, int] | None]:
        """Up to ``limit`` ids in (handler, seq) order after ``after``, and the cursor for the
        next page (None at the end)."""
        found: list[tuple[str, int]] = []
        if limit < 1:
            return found, None
        handlers = [handler] if handler is not None else sorted(self._index)
        for name in handlers:
            if after is not None and name < after[0]:
                continue
            seqs = self._index.get(name, [])
            start = bisect.bisect_right(seqs, after[1]) if after and name == after[0] else 0
            for seq in seqs[start:]:
                if len(found) == limit:
                    return found, found[-1]
                found.append((name, seq))
        return found, None

    def page(
        self, handler: str | None = None, *, after: tuple[str, int] | None = None, limit: int = 100
    ) -> tuple[list[DeadLetter], tuple[str, int] | None]:
        ids, cursor = self.ids(handler, after=after, limit=limit)
        letters = [letter for name, seq in ids if (letter := self.get(name, seq)) is not None]
        return letters, cursor

    async def delete(self, handler: str, seq: int) -> bool:
        deleted = await self._store.delete_system_record(_key(handler, seq))
        self._forget(handler, [seq])
        return deleted

    async def purge(self, handler: str | None = None) -> int:
        """Delete every dead letter (of ``handler``, if given); returns how many."""
        ids, _ = self.ids(handler, limit=self.count(handler))
        for start in range(0, len(ids), _PURGE_CHUNK):
            chunk = ids[start : start + _PURGE_CHUNK]
            await self._store.write_system_state({}, [_key(name, seq) for name, seq in chunk])
            for name, seq in chunk:
                self._forget(name, [seq])
        return len(ids)

    def _forget(self, handler: str, seqs: Sequence[int]) -> None:
        index = self._index.get(handler)
        if index is None:
            return
        for seq in seqs:
            position = _position(index, seq)
            if position is not None:
                del index[position]
        if not index:
            del self._index[handler]


def _position(seqs: list[int], seq: int) -> int | None:
    """Where ``seq`` is in the sorted ``seqs``, or None."""
    position = bisect.bisect_left(seqs, seq)
    return position if position < len(seqs) and seqs[position] == seq else None
