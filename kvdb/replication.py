"""Storage side of replication: applying remote versions, inbound checkpoints, snapshots and
conflict records (REPLICATION 1-3). The wire protocol and policies live in ``sync/``; this
module keeps what must commit atomically with the data.

Applying a batch from node *S* (``ApplyRemoteTask``), in one write transaction:

1. Refuse a batch addressed to another incarnation of this store (``EpochMismatch``), one
   from an incarnation of *S* this store does not know past its start (``EpochMismatch``),
   a gap after the inbound checkpoint (``SequenceGap``), and any version more than
   ``max_clock_skew_ms`` ahead of the wall clock (``ClockSkew``), before writing anything.
2. Answer a batch at or below the checkpoint as a duplicate, writing nothing.
3. Merge each item whose source seq is past the checkpoint (``_merge``): a covered version is
   skipped and logs nothing (what ends loops and redeliveries); a newer one is stored with its
   own ``(hlc, origin)``; concurrent ones are resolved by the resolver (last writer wins by
   default) and a conflict record is written under an id both sides derive alike.
4. Observe the largest remote hlc, so every later local write beats what was seen.
5. Advance the inbound checkpoint of *S* and this node's knowledge per origin.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import lmdb
import orjson

from .codec import Raw, decode_record, encode_record, encode_seq, record_is_tombstone, record_value
from .errors import ClockSkew, EpochMismatch, ReservedKey, SequenceGap, ValidationError
from .events import ChangeEvent, EventType
from .hlc import hlc_to_ms
from .txn import WriteContext
from .validation import RESERVED_PREFIX
from .versions import Version, VersionVector, decode_vector, encode_vector, merge_vectors
from .writer import WriteTask

__all__ = [
    "CONFLICT_PREFIX",
    "ApplyRemoteTask",
    "ApplyResult",
    "ConflictRecord",
    "FinishSnapshotTask",
    "InboundCheckpoint",
    "RemoteBatch",
    "RemoteItem",
    "Resolution",
    "Resolver",
    "VersionedValue",
    "conflict_id",
    "lww",
    "new_epoch",
]

CONFLICT_PREFIX = "_sync/conflicts/"
META_EPOCH = b"epoch"
META_KNOWLEDGE = b"knowledge"  # origin -> highest hlc of it this node has received
_INBOUND = struct.Struct(">QQ")  # seq, updated_ms; then the epoch's bytes
_CONFLICT_VALUE_LIMIT = 64 * 1024  # larger values are left out of conflict records


def new_epoch() -> str:
    """A fresh store epoch: made when a data directory is created (or restored)."""
    return os.urandom(16).hex()


class RemoteItem(NamedTuple):
    """One version sent by another node. ``seq`` and ``txn`` are the source's (0 in a
    snapshot); ``vector`` holds the item's own dot at least. ``event`` is the change event the
    item was made from, when there is one (never on the wire): targets that publish events
    rather than versions (a JetStream bridge) need its type and old value."""

    seq: int
    key: str
    deleted: bool
    value: bytes | None
    content_type: str | None
    hlc: int
    origin: str
    vector: Mapping[str, int]
    txn: int = 0
    event: ChangeEvent | None = None

    @property
    def version(self) -> Version:
        return Version(self.hlc, self.origin)


class RemoteBatch(NamedTuple):
    """Items of the source's log ``(prev_seq, last_seq]`` (REPLICATION 2.2). A snapshot page
    carries current versions instead and moves no checkpoint. ``target_epoch`` is this store's
    epoch as the sender knows it (None: not checked)."""

    source: str
    source_epoch: str
    prev_seq: int
    last_seq: int
    items: Sequence[RemoteItem]
    target_epoch: str | None = None
    snapshot: bool = False


class ApplyResult(NamedTuple):
    checkpoint: int
    applied: int
    skipped: int
    conflicts: int
    duplicate: bool = False


class InboundCheckpoint(NamedTuple):
    """How far this store has applied the log of ``source`` (in incarnation ``epoch``)."""

    source: str
    epoch: str
    seq: int
    updated_ms: int


class VersionedValue(NamedTuple):
    """A value (or tombstone) with its version and vector, as a resolver sees it."""

    key: str
    value: bytes | None
    content_type: str | None
    version: Version
    vector: Mapping[str, int]
    deleted: bool


class Resolution(NamedTuple):
    remote_wins: bool
    policy: str
    note: str | None = None


# A resolver picks the winner of two concurrent versions. It runs on the writer thread, so it
# must be quick, and it must be deterministic and symmetric: every node that meets the pair
# must pick the same winner whichever side it holds.
Resolver = Callable[[str, VersionedValue, VersionedValue], Resolution]


def lww(key: str, local: VersionedValue, remote: VersionedValue) -> Resolution:
    """Last writer wins: the greater ``(hlc, origin)``."""
    return Resolution(remote.version > local.version, "lww")


def conflict_id(key: str, a: Version, b: Version) -> str:
    """The id of the conflict between ``a`` and ``b`` on ``key``: the same on every node."""
    low, high = sorted((a, b))
    digest = hashlib.sha256(f"{key}\0{low}\0{high}".encode())
    return digest.hexdigest()[:32]


class ConflictRecord(NamedTuple):
    """A recorded conflict: ``seq`` is the local change-log seq of its event."""

    seq: int
    detected_ms: int
    document: dict[str, Any]


class ApplyRemoteTask(WriteTask):
    """Merge a ``RemoteBatch`` and advance the inbound checkpoint, atomically."""

    __slots__ = ("batch", "max_skew_ms", "now_ms", "resolver")

    def __init__(
        self, batch: RemoteBatch, resolver: Resolver | None, max_skew_ms: int, now_ms: int
    ) -> None:
        super().__init__(size=max(1, len(batch.items)))
        self.batch = batch
        self.resolver = resolver or lww
        self.max_skew_ms = max_skew_ms
        self.now_ms = now_ms

    def apply(self, ctx: WriteContext) -> ApplyResult:
        batch = self.batch
        _check_target_epoch(ctx, batch.target_epoch)
        inbound = read_inbound(ctx.txn, ctx.dbs["inbound"], batch.source)
        checkpoint = 0
        if inbound is not None and inbound.epoch == batch.source_epoch:
            checkpoint = inbound.seq
        elif not batch.snapshot and batch.prev_seq != 0:
            known = "no incarnation" if inbound is None else f"incarnation {inbound.epoch}"
            raise EpochMismatch(
                f"this node knows {known} of {batch.source}, not {batch.source_epoch}, so "
                f"seq {batch.prev_seq} is no position here: handshake again and resend from "
                "the checkpoint it returns",
                source=batch.source,
                epoch=batch.source_epoch,
            )
        if not batch.snapshot:
            if batch.last_seq <= checkpoint:
                return ApplyResult(checkpoint, 0, len(batch.items), 0, duplicate=True)
            if batch.prev_seq > checkpoint:
                raise SequenceGap(
                    f"batch from {batch.source} starts after seq {batch.prev_seq}, but this "
                    f"node has applied its log only up to seq {checkpoint}: resend from there",
                    source=batch.source,
                    checkpoint=checkpoint,
                    prev_seq=batch.prev_seq,
                )
        items = [item for item in batch.items if batch.snapshot or item.seq > checkpoint]
        if items:
            newest = max(item.hlc for item in items)
            if hlc_to_ms(newest) > self.now_ms + self.max_skew_ms:
                self._refuse_skew(items)
            ctx.observe(newest)
        counts = [0, 0, 0]  # applied, skipped, conflicts
        knowledge = read_knowledge(ctx.txn, ctx.dbs["meta"])
        txn_ids: dict[int, int] = {}
        for item in items:
            if item.txn not in txn_ids or not item.txn:
                txn_ids[item.txn] = ctx.next_seq
            counts[_merge(ctx, item, batch.source, txn_ids[item.txn], self)] += 1
            if item.hlc > knowledge.get(item.origin, -1):
                knowledge[item.origin] = item.hlc
        write_knowledge(ctx.txn, ctx.dbs["meta"], knowledge)
        if not batch.snapshot:
            checkpoint = batch.last_seq
            write_inbound(ctx.txn, ctx.dbs["inbound"], batch.source, batch.source_epoch,
                          checkpoint, self.now_ms)  # fmt: skip
        return ApplyResult(checkpoint, counts[0], counts[1], counts[2])

    def _refuse_skew(self, items: Sequence[RemoteItem]) -> None:
        limit = self.now_ms + self.max_skew_ms
        for item in items:
            ahead = hlc_to_ms(item.hlc) - self.now_ms
            if hlc_to_ms(item.hlc) > limit:
                raise ClockSkew(
                    f"version {item.version} of {item.key!r} is {ahead} ms ahead of this "
                    f"node's clock, more than node.max_clock_skew ({self.max_skew_ms} ms): fix the "
                    f"clock of {item.origin} (NTP); nothing of the batch was applied",
                    key=item.key,
                    origin=item.origin,
                    ahead_ms=ahead,
                    max_skew_ms=self.max_skew_ms,
                )


_APPLIED, _SKIPPED, _CONFLICT = 0, 1, 2


def _merge(ctx: WriteContext, item: RemoteItem, source: str, txn_id: int, task: Any) -> int:
    """Merge one remote version into the store (REPLICATION 3); returns which count it adds."""
    key_bytes = item.key.encode()
    raw = ctx.data_cursor.get(key_bytes)
    if raw is None:
        _store(ctx, item, key_bytes, None, item.vector, source, txn_id)
        return _APPLIED
    local = decode_record(raw)
    local_vector = local.vector()
    if local_vector.get(item.origin, -1) >= item.hlc:
        return _SKIPPED  # already seen: write nothing, log nothing
    merged = merge_vectors(local_vector, item.vector)
    if item.vector.get(local.origin, -1) >= local.hlc:
        _store(ctx, item, key_bytes, raw, merged, source, txn_id)
        return _APPLIED
    mine = VersionedValue(
        item.key,
        None if local.tombstone else local.value,
        local.content_type,
        local.version,
        local_vector,
        local.tombstone,
    )
    theirs = VersionedValue(
        item.key, item.value, item.content_type, item.version, item.vector, item.deleted
    )
    try:
        resolution = task.resolver(item.key, mine, theirs)
    except Exception as exc:  # a faulty resolver must not stop replication
        resolution = lww(item.key, mine, theirs)._replace(
            note=f"resolver failed ({type(exc).__name__}: {exc}); lww decided"
        )
    if resolution.remote_wins:
        _store(ctx, item, key_bytes, raw, merged, source, txn_id)
    else:  # keep the local value; its vector now also covers the remote write
        vv = encode_vector(merged, local.hlc, local.origin)
        record = encode_record(
            local.value,
            local.hlc,
            local.origin.encode(),
            (local.content_type or "").encode(),
            tombstone=local.tombstone,
            vv=vv,
        )
        ctx.data_cursor.put(key_bytes, record)
    winner = theirs if resolution.remote_wins else mine
    _record_conflict(ctx, item.key, mine, theirs, winner, resolution, task.now_ms)
    return _CONFLICT


def _store(
    ctx: WriteContext,
    item: RemoteItem,
    key_bytes: bytes,
    raw_old: Raw | None,
    vector: Mapping[str, int],
    source: str,
    txn_id: int,
) -> None:
    """Store the remote version as written (its own hlc and origin) and log it."""
    hlc, origin = item.hlc, item.origin
    vv = encode_vector(vector, hlc, origin)
    ctype = item.content_type.encode() if item.content_type else b""
    old_live = raw_old is not None and not record_is_tombstone(raw_old)
    old = record_value(raw_old) if old_live and raw_old is not None else None
    origin_bytes = origin.encode()
    if item.deleted:
        record = encode_record(b"", hlc, origin_bytes, b"", tombstone=True, vv=vv)
        ctx.data_cursor.put(key_bytes, record)
        ctx.index_tombstone(key_bytes, hlc, ctx.next_seq)
        event_type, new, ctype = EventType.DELETE, None, b""
    else:
        new = item.value or b""
        record = encode_record(new, hlc, origin_bytes, ctype, vv=vv)
        ctx.data_cursor.put(key_bytes, record)
        event_type = EventType.UPDATE if old_live else EventType.INSERT
    ctx.log_event(event_type, item.key, key_bytes, old, new, hlc, origin, txn_id, ctype, vv, source)


def _record_conflict(
    ctx: WriteContext,
    key: str,
    mine: VersionedValue,
    theirs: VersionedValue,
    winner: VersionedValue,
    resolution: Resolution,
    now_ms: int,
) -> None:
    """Write the conflict's record as the reserved key ``_sync/conflicts/<id>`` (so it is a
    change event that routes can send to handlers) and index it by its seq."""
    ident = conflict_id(key, mine.version, theirs.version)
    record_key = CONFLICT_PREFIX + ident
    if ctx.txn.get(record_key.encode(), db=ctx.dbs["data"]) is not None:
        return  # this node met the same pair before
    low, high = sorted((mine, theirs), key=lambda v: v.version)
    document: dict[str, Any] = {
        "id": ident,
        "key": key,
        "versions": [_version_document(low), _version_document(high)],
        "winner": str(winner.version),
        "policy": resolution.policy,
    }
    if resolution.note:
        document["note"] = resolution.note
    body = orjson.dumps(document)
    result = ctx.put(record_key, record_key.encode(), body, "application/json", ctx.next_seq)
    assert result.seq is not None
    ctx.txn.put(encode_seq(result.seq), struct.pack(">Q", now_ms) + body, db=ctx.dbs["conflicts"])


def _version_document(value: VersionedValue) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": str(value.version), "deleted": value.deleted}
    if value.value is not None and len(value.value) <= _CONFLICT_VALUE_LIMIT:
        try:
            doc["value"] = value.value.decode()
        except UnicodeDecodeError:
            doc["value"] = base64.b64encode(value.value).decode()
            doc["encoding"] = "base64"
        doc["content_type"] = value.content_type
    elif value.value is not None:
        doc["value_size"] = len(value.value)
    return doc


class FinishSnapshotTask(WriteTask):
    """End a snapshot resync: the store now holds the source's state as of ``seq``."""

    __slots__ = ("epoch", "now_ms", "seq", "source", "target_epoch")

    def __init__(
        self, source: str, epoch: str, seq: int, target_epoch: str | None, now_ms: int
    ) -> None:
        super().__init__()
        self.source, self.epoch, self.seq = source, epoch, seq
        self.target_epoch, self.now_ms = target_epoch, now_ms

    def apply(self, ctx: WriteContext) -> InboundCheckpoint:
        _check_target_epoch(ctx, self.target_epoch)
        write_inbound(ctx.txn, ctx.dbs["inbound"], self.source, self.epoch, self.seq, self.now_ms)
        return InboundCheckpoint(self.source, self.epoch, self.seq, self.now_ms)


def _check_target_epoch(ctx: WriteContext, target_epoch: str | None) -> None:
    if target_epoch is None:
        return
    epoch = read_epoch(ctx.txn, ctx.dbs["meta"])
    if target_epoch != epoch:
        raise EpochMismatch(
            f"this batch is for incarnation {target_epoch} of {ctx.origin}, but this store is "
            f"incarnation {epoch} (it was wiped or restored): handshake again",
            source=None,
            epoch=epoch,
        )


# -- records --------------------------------------------------------------------------------


def read_epoch(txn: lmdb.Transaction, meta: Any) -> str:
    raw = txn.get(META_EPOCH, db=meta)
    return "" if raw is None else bytes(raw).decode()


def read_inbound(txn: lmdb.Transaction, db: Any, source: str) -> InboundCheckpoint | None:
    raw = txn.get(source.encode(), db=db)
    return None if raw is None else _decode_inbound(source, bytes(raw))


def list_inbound(txn: lmdb.Transaction, db: Any) -> list[InboundCheckpoint]:
    with txn.cursor(db=db) as cursor:
        return [_decode_inbound(bytes(key).decode(), bytes(raw)) for key, raw in cursor]


def _decode_inbound(source: str, raw: bytes) -> InboundCheckpoint:
    seq, updated = _INBOUND.unpack_from(raw)
    return InboundCheckpoint(source, raw[_INBOUND.size :].decode(), seq, updated)


def write_inbound(
    txn: lmdb.Transaction, db: Any, source: str, epoch: str, seq: int, now_ms: int
) -> None:
    txn.put(source.encode(), _INBOUND.pack(seq, now_ms) + epoch.encode(), db=db)


def read_knowledge(txn: lmdb.Transaction, meta: Any) -> VersionVector:
    raw = txn.get(META_KNOWLEDGE, db=meta)
    return {} if raw is None else decode_vector(bytes(raw), 0, "")


def write_knowledge(txn: lmdb.Transaction, meta: Any, knowledge: VersionVector) -> None:
    if knowledge:
        txn.put(META_KNOWLEDGE, encode_vector(knowledge), db=meta)


def read_conflicts(txn: lmdb.Transaction, db: Any, since: int, limit: int) -> list[ConflictRecord]:
    records: list[ConflictRecord] = []
    with txn.cursor(db=db) as cursor:
        if not cursor.set_range(encode_seq(since + 1)):
            return records
        for raw_key, raw in cursor:
            (detected,) = struct.unpack_from(">Q", raw)
            seq = struct.unpack(">Q", raw_key)[0]
            records.append(ConflictRecord(seq, detected, orjson.loads(bytes(raw[8:]))))
            if len(records) >= limit:
                break
    return records


def expire_conflicts(
    txn: lmdb.Transaction, dbs: dict[str, Any], keep: int | None, since_ms: int | None, limit: int
) -> int:
    """Drop conflict records, oldest first, beyond the newest ``keep`` or detected before
    ``since_ms`` (None: no such limit): the index entry and the ``_sync/conflicts/<id>``
    record, without a change event (as compaction drops old events). At most ``limit``."""
    index = dbs["conflicts"]
    excess = 0 if keep is None else txn.stat(index)["entries"] - keep
    deleted = 0
    with txn.cursor(db=index) as cursor:
        if not cursor.first():
            return 0
        while deleted < limit and cursor.key():
            raw = cursor.value()
            (detected,) = struct.unpack_from(">Q", raw)
            if deleted >= excess and (since_ms is None or detected >= since_ms):
                break
            ident = orjson.loads(bytes(raw[8:]))["id"]
            txn.delete((CONFLICT_PREFIX + ident).encode(), db=dbs["data"])
            cursor.delete()  # and moves to the next entry
            deleted += 1
    return deleted


def is_replicated_key(key: str) -> bool:
    """Reserved keys (``_...``) describe one node and never travel."""
    return not key.startswith(RESERVED_PREFIX)


def check_items(items: Sequence[RemoteItem]) -> None:
    """Shape checks on items decoded from the wire, before they reach the writer."""
    for item in items:
        if item.key.startswith(RESERVED_PREFIX):
            raise ReservedKey(
                f"key {item.key[:40]!r} is reserved for the system and is never replicated"
            )
        if item.vector.get(item.origin, -1) < item.hlc:
            raise ValidationError(
                f"item {item.key[:40]!r}: its version vector must include its own version "
                f"{item.version}"
            )
        if not item.deleted and item.value is None:
            raise ValidationError(f"item {item.key[:40]!r} is a put without a value")
