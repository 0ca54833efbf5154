"""``SessionWindowAggregate``: session windows per key, merged as records arrive.

State is ``sessions[key] -> [session, ...]`` sorted by start. A session is the list
``[start, end, accumulator, fired, batch]``: the window ``[start, end)``, whether it fired, and
the batch that last changed it (``DEAD`` once merged away or expired). Heaps of sessions due to
fire and to expire, and the sessions changed since the last checkpoint, hold the session lists
themselves, so each step costs the sessions it touches, not all the sessions of a key.

Per record at ``t`` (``process``):
1. Its own window is ``[t, t + gap)``. The sessions of its key that overlap or touch it
   (``s.start <= t + gap`` and ``s.end >= t``) merge with it into one window.
2. If that merged window has ``end + allowed_lateness <= watermark`` the record is too late:
   counted in ``late_dropped`` and dropped, nothing merges.
3. Otherwise the merged session replaces the ones it absorbed (their rows are deleted from
   the table and, with listeners, a ``delete`` update is emitted for each visible one).

At the end of each batch (``advance``): sessions with ``end <= watermark`` fire (``final``:
their rows appear); a fired session that a late record changed fires again; sessions with
``end + retention <= watermark`` leave state and table.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from itertools import repeat
from typing import Any

from .operators import key_order
from .records import RecordBatch
from .results import ResultUpdate
from .state import dumps, key_digest, loads
from .windowing import WindowAggregate
from .windows import Session

__all__ = ["SessionWindowAggregate"]

START, END, ACC, FIRED, BATCH = range(5)
DEAD = -1


class SessionWindowAggregate(WindowAggregate):
    counters = (*WindowAggregate.counters, "merges")

    def _configure(self, spec: Session, allowed_lateness: int, out_of_orderness: int) -> None:
        self.gap = spec.gap
        self._late_slack = allowed_lateness + out_of_orderness  # late: end + slack <= max time
        self._out_of_orderness = out_of_orderness
        self.sessions: dict[Any, list[list[Any]]] = {}
        self._pending: list[tuple[int, int, Any, list[Any]]] = []  # (end, n, key, session)
        self._expiring: list[tuple[int, int, Any, list[Any]]] = []  # (end + retention, ...)
        self._tiebreak = itertools.count()
        self._batch = 0
        self._changed: dict[int, tuple[Any, list[Any]]] = {}  # by id(session), this batch
        self._dirty: dict[int, tuple[Any, list[Any]]] = {}  # since the last checkpoint
        self._deleted: set[tuple[Any, int]] = set()  # (key, start) since the last checkpoint
        self._digests: dict[Any, str] = {}
        self.merges = 0

    def process(
        self, batch: RecordBatch, marks: list[int], updates: list[ResultUpdate] | None
    ) -> None:
        self._batch += 1
        keys = batch.keys if batch.keys is not None else repeat(None)
        v = None
        try:
            for t, p, k, v in zip(batch.times, batch.positions, keys, batch.values, strict=False):
                self._add(t, marks[p], k, v, updates)
        except Exception as exc:
            raise self._failed(exc, v) from exc

    def _add(
        self, t: int, mark: int, key: Any, value: Any, updates: list[ResultUpdate] | None
    ) -> None:
        end = t + self.gap
        sessions = self.sessions.get(key)
        if sessions is None:
            sessions = self.sessions[key] = []
        # sessions are disjoint and sorted; find those overlapping or touching [t, end)
        first = len(sessions)
        while first > 0 and sessions[first - 1][END] >= t:
            first -= 1
        last = first
        while last < len(sessions) and sessions[last][START] <= end:
            last += 1
        absorbed = sessions[first:last]
        start = min(t, absorbed[0][START]) if absorbed else t
        merged_end = max(end, absorbed[-1][END]) if absorbed else end
        if merged_end + self._late_slack <= mark:
            self.late_dropped += 1
            if not sessions:
                del self.sessions[key]
            return
        watermark = mark - self._out_of_orderness  # as of this record
        for old in absorbed:  # due to fire before this record: fire them first
            if not old[FIRED] and old[END] <= watermark:
                self._fire(key, old, updates)
        closed = merged_end <= watermark  # a late record (within the allowed lateness)
        if closed:
            self.late_updates += 1
        aggregates = self.aggregates
        if len(absorbed) == 1 and absorbed[0][START] == start and absorbed[0][END] == merged_end:
            session = absorbed[0]  # the record falls inside a session: no new window
            session[ACC] = aggregates.add(session[ACC], value)
        else:
            acc = aggregates.create()
            for old in absorbed:
                acc = aggregates.merge(acc, old[ACC])
                if updates is not None and self.visible(old):
                    updates.append(
                        ResultUpdate("delete", self.row(key, old[START], old[END], old[ACC]))
                    )
                self._forget(key, old)
            if len(absorbed) > 1:
                self.merges += len(absorbed) - 1
            acc = aggregates.add(acc, value)
            session = [start, merged_end, acc, closed, self._batch]
            sessions[first:last] = [session]
            if closed:
                self._expire_later(key, session)
        session[BATCH] = self._batch
        self._changed[id(session)] = self._dirty[id(session)] = (key, session)
        if updates is not None and not self.final:
            updates.append(ResultUpdate("upsert", self.row(key, start, merged_end, session[ACC])))

    def _forget(self, key: Any, session: list[Any]) -> None:
        """``session`` left the state (merged into another, or expired)."""
        session[BATCH] = DEAD
        self._changed.pop(id(session), None)
        self._dirty.pop(id(session), None)
        self._deleted.add((key, session[START]))

    def _fire(self, key: Any, session: list[Any], updates: list[ResultUpdate] | None) -> None:
        session[FIRED] = True
        self.windows_fired += 1
        self._dirty[id(session)] = (key, session)
        self._expire_later(key, session)
        if updates is not None and self.final:
            updates.append(self._upsert(key, session))

    def _expire_later(self, key: Any, session: list[Any]) -> None:
        expires = session[END] + self.retention
        heapq.heappush(self._expiring, (expires, next(self._tiebreak), key, session))

    def advance(self, watermark: int, updates: list[ResultUpdate] | None) -> None:
        emit = updates is not None and self.final
        for key, session in self._changed.values():
            if session[FIRED]:  # late records changed it: it fires again, once per batch
                if emit:
                    assert updates is not None
                    updates.append(self._upsert(key, session))
            else:
                heapq.heappush(self._pending, (session[END], next(self._tiebreak), key, session))
        self._changed.clear()
        pending = self._pending
        while pending and pending[0][0] <= watermark:
            end, _, key, session = heapq.heappop(pending)
            if session[BATCH] != DEAD and session[END] == end and not session[FIRED]:
                self._fire(key, session, updates)
        if watermark > self.fired_through:
            self.fired_through = watermark
        expiring = self._expiring
        while expiring and expiring[0][0] <= watermark:
            _, _, key, session = heapq.heappop(expiring)
            if session[BATCH] == DEAD or session[END] + self.retention > watermark:
                continue
            sessions = self.sessions[key]
            sessions.pop(next(i for i, s in enumerate(sessions) if s is session))
            if not sessions:
                del self.sessions[key]
            self._forget(key, session)

    def _upsert(self, key: Any, session: list[Any]) -> ResultUpdate:
        return ResultUpdate("upsert", self.row(key, session[START], session[END], session[ACC]))

    def visible(self, session: list[Any]) -> bool:
        return not self.final or bool(session[FIRED])

    def rows(self) -> Iterator[dict[str, Any]]:
        """The table, in order of window start, then key."""
        visible = [
            (session[START], key_order(key), key, session)
            for key, sessions in self.sessions.items()
            for session in sessions
            if self.visible(session)
        ]
        visible.sort(key=lambda item: item[:2])
        for _, _, key, session in visible:
            yield self.row(key, session[START], session[END], session[ACC])

    def open_windows(self) -> int:
        return sum(1 for sessions in self.sessions.values() for s in sessions if not s[FIRED])

    # -- checkpoints --------------------------------------------------------------------------

    def _record(self, key: Any, start: int) -> str:
        digest = self._digests.get(key)
        if digest is None:
            digest = self._digests[key] = key_digest(key)
        return f"s/{digest}/{start}"

    def changes(self) -> tuple[dict[str, bytes], set[str]]:
        """A record per session changed since the last call; deletes for those gone."""
        puts = {
            self._record(key, session[START]): dumps((key, session))
            for key, session in self._dirty.values()
        }
        deletes = {self._record(key, start) for key, start in self._deleted} - set(puts)
        self._dirty.clear()
        self._deleted.clear()
        return puts, deletes

    def restore(self, records: dict[str, bytes], meta: dict[str, Any]) -> None:
        self.sessions = {}
        for raw in records.values():
            key, session = loads(raw)
            session[BATCH] = 0
            self.sessions.setdefault(key, []).append(session)
        self._restore_counters(meta)
        self._pending, self._expiring = [], []
        for key, sessions in self.sessions.items():
            sessions.sort(key=lambda session: session[START])
            for session in sessions:
                if session[FIRED]:
                    expires = session[END] + self.retention
                    self._expiring.append((expires, next(self._tiebreak), key, session))
                else:
                    self._pending.append((session[END], next(self._tiebreak), key, session))
        heapq.heapify(self._pending)
        heapq.heapify(self._expiring)
        self._batch = 0
        self._changed.clear()
        self._dirty.clear()
        self._deleted.clear()
