"""Reading and compacting the change log.

Resume tokens: ``read(since=N)`` returns events with ``seq > N``. The log is gapless from
``oldest_seq`` to ``last_seq``; asking for events after ``N < oldest_seq - 1`` raises
``Compacted`` (with ``oldest_seq``), never skips silently.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import lmdb

from .checkpoints import min_pinned_seq
from .codec import (
    Raw,
    Record,
    decode_event,
    decode_record,
    decode_seq,
    encode_seq,
    event_hlc,
    record_hlc,
    record_is_tombstone,
)
from .config import RetentionPolicy
from .errors import Compacted
from .events import ChangeEvent
from .hlc import hlc_to_ms
from .replication import expire_conflicts, read_knowledge
from .txn import WriteContext
from .writer import WriteTask

__all__ = ["CompactionTask", "oldest_seq", "read_events"]

_U64 = struct.Struct(">Q")


def oldest_seq(txn: lmdb.Transaction, log_db: Any, last_seq: int) -> int:
    """Seq of the oldest retained event; ``last_seq + 1`` when the log is empty."""
    with txn.cursor(db=log_db) as cursor:
        if cursor.first():
            return decode_seq(cursor.key())
    return last_seq + 1


def read_events(
    txn: lmdb.Transaction, log_db: Any, since: int, limit: int, last_seq: int
) -> list[ChangeEvent]:
    """Up to ``limit`` events with ``seq > since``, in seq order."""
    if since < 0:
        raise ValueError(f"since must be >= 0, got {since}")
    first = oldest_seq(txn, log_db, last_seq)
    if since < first - 1:
        raise Compacted(since, first)
    events: list[ChangeEvent] = []
    if limit <= 0:
        return events
    with txn.cursor(db=log_db) as cursor:
        if not cursor.set_range(encode_seq(since + 1)):
            return events
        for raw_key, raw in cursor:
            events.append(decode_event(decode_seq(raw_key), raw))
            if len(events) >= limit:
                break
    return events


class CompactionTask(WriteTask):
    """Delete one chunk of expired change-log events, tombstones and conflict records.

    An event is expired when it is beyond ``max_events`` or older than ``max_age_ms`` *and*
    every pinning checkpoint has passed it, or when it is beyond ``hard_max_events`` whatever
    the checkpoints say. Returns how many entries it deleted; a full chunk means there may be
    more, and the caller submits another task (so compaction never holds the writer long).
    """

    __slots__ = ("guard", "now_ms", "policy", "tombstone_grace_ms")

    def __init__(
        self,
        policy: RetentionPolicy,
        tombstone_grace_ms: int,
        now_ms: int,
        guard: Callable[[int], bool] | None = None,
    ) -> None:
        super().__init__(size=policy.compaction_chunk, frees_space=True)
        self.policy = policy
        self.tombstone_grace_ms = tombstone_grace_ms
        self.now_ms = now_ms
        self.guard = guard

    def apply(self, ctx: WriteContext) -> int:
        return self._compact_log(ctx) + self._collect_tombstones(ctx) + self._expire_conflicts(ctx)

    def _expire_conflicts(self, ctx: WriteContext) -> int:
        policy = self.policy
        max_age = policy.max_conflict_age_ms
        since_ms = None if max_age is None else self.now_ms - max_age
        return expire_conflicts(
            ctx.txn, ctx.dbs, policy.max_conflicts, since_ms, policy.compaction_chunk
        )

    def _compact_log(self, ctx: WriteContext) -> int:
        policy, last = self.policy, ctx.seq
        soft_cut = 0 if policy.max_events is None else last - policy.max_events
        hard_cut = 0 if policy.hard_max_events is None else last - policy.hard_max_events
        age_cut_ms = None if policy.max_age_ms is None else self.now_ms - policy.max_age_ms
        pin = min_pinned_seq(ctx.txn, ctx.dbs["checkpoints"])
        deleted = 0
        with ctx.txn.cursor(db=ctx.dbs["changelog"]) as cursor:
            if not cursor.first():
                return 0
            while deleted < policy.compaction_chunk and (raw_key := cursor.key()):
                seq = decode_seq(raw_key)
                expired = seq <= soft_cut or (
                    age_cut_ms is not None and hlc_to_ms(event_hlc(cursor.value())) < age_cut_ms
                )
                pinned = pin is not None and seq > pin
                if not ((expired and not pinned) or seq <= hard_cut):
                    break
                cursor.delete()  # and moves to the next entry (or past the end: key() == b"")
                deleted += 1
        return deleted

    def _collect_tombstones(self, ctx: WriteContext) -> int:
        """Reap tombstones, oldest first, that are older than the grace period and that no
        other node can still need (REPLICATION 5): this node has received every write their
        vectors cover, and the guard (set by replication) says every peer holds them. The
        first tombstone that must stay ends the pass: younger ones wait behind it."""
        cutoff = self.now_ms - self.tombstone_grace_ms
        data = ctx.dbs["data"]
        knowledge = read_knowledge(ctx.txn, ctx.dbs["meta"])
        deleted = 0
        with ctx.txn.cursor(db=ctx.dbs["tombstones"]) as cursor:
            if not cursor.first():
                return 0
            while deleted < self.policy.compaction_chunk and (index_key := cursor.key()):
                hlc = _U64.unpack_from(index_key)[0]
                if hlc_to_ms(hlc) >= cutoff:
                    break
                key = index_key[_U64.size :]
                raw = ctx.txn.get(key, db=data)
                # The key may have been written again since; only drop the same tombstone.
                if raw is not None and record_is_tombstone(raw) and record_hlc(raw) == hlc:
                    if not self._may_reap(ctx, decode_record(raw), cursor.value(), knowledge):
                        break
                    ctx.txn.delete(key, db=data)
                cursor.delete()
                deleted += 1
        return deleted

    def _may_reap(
        self, ctx: WriteContext, record: Record, raw_seq: Raw, knowledge: dict[str, int]
    ) -> bool:
        for origin, hlc in record.vector().items():
            if origin != ctx.origin and knowledge.get(origin, -1) < hlc:
                return False  # a write this tombstone covers has not arrived here yet
        seq = _U64.unpack(raw_seq)[0] if len(raw_seq) == _U64.size else 0
        return self.guard is None or self.guard(seq)
