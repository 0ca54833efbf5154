"""``Replica``: what replication (``sync/``) needs of a store, as ``store.replica``.

Reads run in their own read transaction; writes go through the store's group-commit writer
like every other write, so remote versions commit with the same durability as local ones.
"""

from __future__ import annotations

from collections.abc import Callable

from .codec import record_fields
from .config import Limits
from .env import Environment
from .errors import ValidationError
from .replication import (
    ApplyRemoteTask,
    ApplyResult,
    ConflictRecord,
    FinishSnapshotTask,
    InboundCheckpoint,
    RemoteBatch,
    RemoteItem,
    Resolver,
    check_items,
    is_replicated_key,
    list_inbound,
    read_conflicts,
    read_inbound,
    read_knowledge,
)
from .validation import validate_content_type, validate_key, validate_value
from .versions import VersionVector, decode_vector
from .writer import GroupCommitWriter

__all__ = ["MAX_SNAPSHOT_PAGE", "Replica", "TombstoneGuard"]

MAX_SNAPSHOT_PAGE = 10_000
_tuple_new = tuple.__new__

# Given a tombstone's local seq: may it be reaped (has every peer that needs it received it)?
TombstoneGuard = Callable[[int], bool]


class Replica:
    def __init__(
        self,
        env: Environment,
        writer: GroupCommitWriter,
        wall: Callable[[], int],
        node_id: str,
        epoch: str,
        limits: Limits,
    ) -> None:
        self._env = env
        self._limits = limits
        self._dbs = env.dbs
        self._writer = writer
        self._wall = wall
        self.node_id = node_id
        self.epoch = epoch
        self.tombstone_guard: TombstoneGuard | None = None

    # -- applying ---------------------------------------------------------------------------

    async def apply(
        self, batch: RemoteBatch, *, resolver: Resolver | None = None, max_clock_skew_ms: int
    ) -> ApplyResult:
        """Merge a batch from another node; see ``kvdb.replication`` for the rules. Raises
        ``SequenceGap``, ``EpochMismatch`` or ``ClockSkew`` with nothing applied."""
        self._check(batch)
        task = ApplyRemoteTask(batch, resolver, max_clock_skew_ms, self._wall())
        result: ApplyResult = await self._writer.run(task)
        return result

    def apply_sync(
        self, batch: RemoteBatch, *, resolver: Resolver | None = None, max_clock_skew_ms: int
    ) -> ApplyResult:
        self._check(batch)
        task = ApplyRemoteTask(batch, resolver, max_clock_skew_ms, self._wall())
        result: ApplyResult = self._writer.run_sync(task)
        return result

    def _check(self, batch: RemoteBatch) -> None:
        if batch.source == self.node_id:
            raise ValidationError(
                f"a batch from {batch.source!r} cannot be applied to the node with the same "
                "id: every node needs its own node id"
            )
        if not 0 <= batch.prev_seq <= batch.last_seq:
            raise ValidationError(
                f"prev_seq ({batch.prev_seq}) must be within 0..last_seq ({batch.last_seq})"
            )
        check_items(batch.items)
        for item in batch.items:
            validate_key(item.key, self._limits)
            if item.value is not None:
                validate_value(item.value, self._limits, item.key)
            if item.content_type is not None:
                validate_content_type(item.content_type, f"content type of {item.key[:40]!r}")

    async def finish_snapshot(
        self, source: str, epoch: str, seq: int, target_epoch: str | None = None
    ) -> InboundCheckpoint:
        """After a snapshot of ``source`` as of its ``seq``: resume its log after ``seq``."""
        task = FinishSnapshotTask(source, epoch, seq, target_epoch, self._wall())
        result: InboundCheckpoint = await self._writer.run(task)
        return result

    # -- reading ----------------------------------------------------------------------------

    def inbound(self, source: str) -> InboundCheckpoint | None:
        with self._env.read() as txn:
            return read_inbound(txn, self._dbs["inbound"], source)

    def inbound_all(self) -> list[InboundCheckpoint]:
        with self._env.read() as txn:
            return list_inbound(txn, self._dbs["inbound"])

    def knowledge(self) -> VersionVector:
        """origin -> the highest hlc of it this node has received from other nodes."""
        with self._env.read() as txn:
            return read_knowledge(txn, self._dbs["meta"])

    def scan_versions(
        self, after: str | None = None, limit: int = 1000
    ) -> tuple[list[RemoteItem], str | None]:
        """Current versions in key order, tombstones included and reserved keys left out:
        a snapshot page. Returns the items and the key to pass as ``after`` next (None at
        the end)."""
        if not 1 <= limit <= MAX_SNAPSHOT_PAGE:
            raise ValidationError(f"limit must be within 1..{MAX_SNAPSHOT_PAGE}, got {limit}")
        items: list[RemoteItem] = []
        start = after.encode() + b"\x00" if after is not None else b""
        with self._env.read() as txn, txn.cursor(db=self._dbs["data"]) as cursor:
            if not cursor.set_range(start):
                return items, None
            for raw_key, raw in cursor:
                key = bytes(raw_key).decode()
                if not is_replicated_key(key):
                    continue
                if len(items) == limit:
                    return items, items[-1].key
                value, hlc, origin, ctype, tombstone, vv = record_fields(raw)
                vector = decode_vector(vv, hlc, origin)
                item = (0, key, tombstone, None if tombstone else value, ctype, hlc, origin,
                        vector, 0, None)  # fmt: skip
                items.append(_tuple_new(RemoteItem, item))  # a snapshot's hot loop
        return items, None

    def conflicts(self, since: int = 0, limit: int = 100) -> list[ConflictRecord]:
        """Conflict records whose event seq is greater than ``since``, oldest first."""
        with self._env.read() as txn:
            return read_conflicts(txn, self._dbs["conflicts"], since, limit)

    def conflict_count(self) -> int:
        with self._env.read() as txn:
            return int(txn.stat(self._dbs["conflicts"])["entries"])
