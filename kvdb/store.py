"""``Store``: the node's key-value store and change log, the face of the ``kvdb`` package.

Reads run on the caller's thread in their own LMDB read transaction and never wait for the
writer. Writes go to the group-commit writer thread; the async methods are for event loops,
the ``*_sync`` twins for plain threads. After each commit the store calls its commit listeners
with the committed events, in seq order, without knowing who they are.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from .changelog import CompactionTask, oldest_seq, read_events
from .checkpoints import (
    Checkpoint,
    DeleteCheckpointTask,
    SetCheckpointTask,
    get_checkpoint,
    list_checkpoints,
)
from .codec import decode_record, record_is_tombstone
from .config import LMDB_MAX_KEY_BYTES, Durability, StoreConfig
from .env import Environment
from .errors import KvdbError, ValidationError
from .events import ChangeEvent
from .hlc import HybridLogicalClock, wall_clock_ms
from .ops import BatchResult, Delete, Entry, Put, ScanPage, WriteResult
from .replica import Replica
from .replication import META_EPOCH, new_epoch, read_epoch
from .space import SpaceGuard
from .stats import WriterStats
from .system import (
    DeleteSystemRecordTask,
    PutSystemRecordTask,
    SystemStateTask,
    list_system_records,
)
from .txn import META_HLC, META_LAST_SEQ, META_NODE_ID, WriteContext, read_u64
from .validation import validate_batch, validate_content_type, validate_key, validate_value
from .versions import Version
from .writer import CommitListener, GroupCommitWriter, WriteTask

__all__ = ["Store", "StoreStats"]

log = logging.getLogger("kvdb.store")

MAX_SCAN_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class StoreStats:
    node_id: str
    epoch: str
    last_seq: int
    oldest_seq: int
    log_events: int
    records: int  # live keys and tombstones
    map_size: int
    writer: WriterStats


class Store:
    """Open (or create) the store described by ``config``. ``clock`` returns wall time in ms
    and exists so tests can step it backwards."""

    def __init__(self, config: StoreConfig, *, clock: Callable[[], int] = wall_clock_ms) -> None:
        self.config = config
        self.limits = config.limits
        self._wall = clock
        self._env = Environment(config)
        self._dbs = self._env.dbs
        try:
            self.node_id, self.epoch, last_seq, last_hlc = self._load_meta()
        except BaseException:
            self._env.close()
            raise
        self.clock = HybridLogicalClock(clock, last=last_hlc)
        flush = config.flush_interval_ms / 1000 if config.durability is Durability.ASYNC else None
        self._writer = GroupCommitWriter(
            self._env,
            self.clock,
            self.node_id,
            last_seq,
            max_group_ops=config.max_group_ops,
            flush_interval_s=flush,
            space=SpaceGuard(self._env, config.headroom),
        )
        self.replica = Replica(
            self._env, self._writer, clock, self.node_id, self.epoch, config.limits
        )
        self._closing = threading.Event()
        self._maintenance = threading.Thread(
            target=self._maintain, name="kvdb-maintenance", daemon=True
        )
        self._maintenance.start()

    def _load_meta(self) -> tuple[str, str, int, int]:
        meta = self._dbs["meta"]
        with self._env.lmdb.begin(write=True) as txn:
            stored = txn.get(META_NODE_ID, db=meta)
            node_id = self.config.node_id or (stored.decode() if stored else uuid.uuid4().hex[:12])
            if stored is None or stored.decode() != node_id:
                if stored is not None:
                    log.warning("node id changes from %s to %s", stored.decode(), node_id)
                txn.put(META_NODE_ID, node_id.encode(), db=meta)
            epoch = read_epoch(txn, meta)
            if not epoch:  # a new data directory (or one from before replication)
                epoch = new_epoch()
                txn.put(META_EPOCH, epoch.encode(), db=meta)
            last_seq = read_u64(txn, META_LAST_SEQ, meta) or 0
            last_hlc = read_u64(txn, META_HLC, meta) or 0
        return node_id, epoch, last_seq, last_hlc

    # -- reads --------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """Seq of the last committed event (0 before the first write)."""
        return self._writer.last_seq

    def get(self, key: str, default: Entry | None = None) -> Entry | None:
        key_bytes = validate_key(key, self.limits, allow_reserved=True)
        with self._env.read() as txn:
            raw = txn.get(key_bytes, db=self._dbs["data"])
        if raw is None or record_is_tombstone(raw):
            return default
        record = decode_record(raw)
        return Entry(key, record.value, record.version, record.content_type)

    def scan(
        self,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> ScanPage:
        """Keys in ``[start, end)`` that begin with ``prefix``, in byte order, skipping deleted
        keys. ``cursor`` (from the previous page's ``next``) resumes after the last key seen."""
        if not 1 <= limit <= MAX_SCAN_LIMIT:
            raise ValidationError(f"limit must be within 1..{MAX_SCAN_LIMIT}, got {limit}")
        prefix_b = prefix.encode() if prefix else b""
        lower = max(prefix_b, start.encode() if start else b"")
        after = _decode_cursor(cursor) if cursor else None
        if after is not None and after >= lower:
            lower = after + b"\x00"
        upper = end.encode() if end else None
        items: list[Entry] = []
        last_key: bytes | None = None
        more = False
        with self._env.read() as txn, txn.cursor(db=self._dbs["data"]) as cur:
            if cur.set_range(lower):
                for key_buffer, raw in cur:
                    raw_key = bytes(key_buffer)
                    if (upper is not None and raw_key >= upper) or not raw_key.startswith(prefix_b):
                        break
                    if len(items) == limit:
                        more = True
                        break
                    last_key = raw_key
                    if record_is_tombstone(raw):
                        continue
                    record = decode_record(raw)
                    items.append(
                        Entry(raw_key.decode(), record.value, record.version, record.content_type)
                    )
        next_cursor = _encode_cursor(last_key) if more and last_key is not None else None
        return ScanPage(tuple(items), next_cursor)

    def oldest_seq(self) -> int:
        """Seq of the oldest event still in the change log (``last_seq + 1`` if empty)."""
        with self._env.read() as txn:
            return oldest_seq(txn, self._dbs["changelog"], self.last_seq)

    def read_changes(self, since: int, limit: int = 1000) -> list[ChangeEvent]:
        """Up to ``limit`` committed events with ``seq > since``, in seq order. Raises
        ``Compacted`` if some of them are no longer retained."""
        last = self.last_seq  # read before the txn: the txn sees at least this much
        with self._env.read() as txn:
            return read_events(txn, self._dbs["changelog"], since, limit, last)

    # -- writes -------------------------------------------------------------------------------

    async def put(
        self,
        key: str,
        value: bytes,
        *,
        content_type: str | None = None,
        if_version: Version | None = None,
        if_absent: bool = False,
    ) -> WriteResult:
        key_bytes = validate_key(key, self.limits)
        validate_value(value, self.limits, key)
        if content_type is not None:
            content_type = validate_content_type(content_type)
        task = _PutTask(key, key_bytes, value, content_type, if_version, if_absent)
        result: WriteResult = await self._writer.run(task)
        return result

    async def delete(self, key: str, *, if_version: Version | None = None) -> WriteResult:
        """Delete ``key``. The result's ``seq`` is None if the key did not exist."""
        result = await self.batch([Delete(key, if_version)])
        return result.results[0]

    async def batch(self, ops: Sequence[Put | Delete]) -> BatchResult:
        """Apply ``ops`` atomically: all of them commit in one transaction, or none does."""
        task = _BatchTask(ops, *validate_batch(ops, self.limits))
        result: BatchResult = await self._writer.run(task)
        return result

    def put_sync(
        self,
        key: str,
        value: bytes,
        *,
        content_type: str | None = None,
        if_version: Version | None = None,
        if_absent: bool = False,
    ) -> WriteResult:
        key_bytes = validate_key(key, self.limits)
        validate_value(value, self.limits, key)
        if content_type is not None:
            content_type = validate_content_type(content_type)
        task = _PutTask(key, key_bytes, value, content_type, if_version, if_absent)
        result: WriteResult = self._writer.run_sync(task)
        return result

    def delete_sync(self, key: str, *, if_version: Version | None = None) -> WriteResult:
        return self.batch_sync([Delete(key, if_version)]).results[0]

    def batch_sync(self, ops: Sequence[Put | Delete]) -> BatchResult:
        task = _BatchTask(ops, *validate_batch(ops, self.limits))
        result: BatchResult = self._writer.run_sync(task)
        return result

    # -- checkpoints --------------------------------------------------------------------------

    def get_checkpoint(self, name: str) -> Checkpoint | None:
        with self._env.read() as txn:
            return get_checkpoint(txn, self._dbs["checkpoints"], name)

    def list_checkpoints(self) -> list[Checkpoint]:
        with self._env.read() as txn:
            return list_checkpoints(txn, self._dbs["checkpoints"])

    async def set_checkpoint(self, name: str, seq: int, *, pin: bool = True) -> Checkpoint:
        """Record that consumer ``name`` has processed every event up to ``seq``. A pinning
        checkpoint holds back change-log retention until it moves on (up to the hard cap)."""
        result: Checkpoint = await self._writer.run(SetCheckpointTask(name, seq, pin))
        return result

    async def delete_checkpoint(self, name: str) -> bool:
        result: bool = await self._writer.run(DeleteCheckpointTask(name))
        return result

    # -- system records -----------------------------------------------------------------------

    def get_system_record(self, key: str) -> bytes | None:
        with self._env.read() as txn:
            raw = txn.get(key.encode(), db=self._dbs["system"])
        return None if raw is None else bytes(raw)

    def list_system_records(self, prefix: str) -> list[tuple[str, bytes]]:
        """``(key, value)`` of every system record whose key starts with ``prefix``."""
        with self._env.read() as txn:
            return list_system_records(txn, self._dbs["system"], prefix)

    async def put_system_record(self, key: str, value: bytes) -> None:
        """Persist a node definition (a stream config, a route...): no change event."""
        await self._writer.run(PutSystemRecordTask(key, value))

    async def delete_system_record(self, key: str) -> bool:
        result: bool = await self._writer.run(DeleteSystemRecordTask(key))
        return result

    async def write_system_state(
        self,
        puts: Mapping[str, bytes],
        deletes: Iterable[str] = (),
        *,
        checkpoint: tuple[str, int] | None = None,
        pin: bool = True,
    ) -> None:
        """Put and delete system records and set checkpoint ``(name, seq)``, all in one
        transaction: state derived from the change log commits with the seq it reflects."""
        task = SystemStateTask(
            puts, deletes, None if checkpoint is None else SetCheckpointTask(*checkpoint, pin)
        )
        await self._writer.run(task)

    # -- listeners, maintenance, lifecycle ----------------------------------------------------

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call ``listener(events)`` after every commit that produced events, from the writer
        thread, in seq order. It must return quickly and never block: hand work off."""
        self._writer.add_listener(listener)

    def remove_commit_listener(self, listener: CommitListener) -> None:
        self._writer.remove_listener(listener)

    def compact_sync(self) -> int:
        """Run retention now, chunk by chunk; returns how many entries were removed."""
        total = 0
        retention = self.config.retention
        while True:
            task = CompactionTask(
                retention,
                self.config.tombstone_grace_ms,
                self._wall(),
                self.replica.tombstone_guard,
            )
            deleted: int = self._writer.run_sync(task)
            total += deleted
            if deleted < retention.compaction_chunk:
                return total

    def _maintain(self) -> None:
        interval = self.config.retention.compaction_interval_ms / 1000
        while not self._closing.wait(interval):
            try:
                removed = self.compact_sync()
            except KvdbError as exc:
                log.warning("compaction failed: %s", exc)
                continue
            if removed:
                log.debug("compaction removed %d entries", removed)

    def stats(self) -> StoreStats:
        with self._env.read() as txn:
            records = txn.stat(self._dbs["data"])["entries"]
            log_events = txn.stat(self._dbs["changelog"])["entries"]
            first = oldest_seq(txn, self._dbs["changelog"], self.last_seq)
        return StoreStats(
            self.node_id,
            self.epoch,
            self.last_seq,
            first,
            log_events,
            records,
            self._env.map_size,
            self._writer.stats,
        )

    def close(self) -> None:
        """Finish queued writes, stop the threads and close LMDB. Idempotent."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._maintenance.join()
        self._writer.close()
        self._env.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _PutTask(WriteTask):
    """A single put: the most common write, kept free of batch bookkeeping."""

    __slots__ = (
        "conditional",
        "content_type",
        "if_absent",
        "if_version",
        "key",
        "key_bytes",
        "value",
    )

    def __init__(
        self,
        key: str,
        key_bytes: bytes,
        value: bytes,
        content_type: str | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> None:
        super().__init__(nbytes=2 * (len(key_bytes) + len(value)))
        self.key = key
        self.key_bytes = key_bytes
        self.value = value
        self.content_type = content_type
        self.if_version = if_version
        self.if_absent = if_absent
        self.conditional = if_version is not None or if_absent

    def apply(self, ctx: WriteContext) -> WriteResult:
        if self.conditional:
            ctx.check(self.key, self.key_bytes, self.if_version, self.if_absent)
        return ctx.put(self.key, self.key_bytes, self.value, self.content_type, ctx.seq + 1)


class _BatchTask(WriteTask):
    """An atomic batch: every precondition is checked before the first write, so a failing
    batch writes nothing and the rest of the commit group is unaffected."""

    __slots__ = ("keys", "ops")

    def __init__(self, ops: Sequence[Put | Delete], keys: list[bytes], nbytes: int) -> None:
        deletes_only = all(isinstance(op, Delete) for op in ops)
        super().__init__(size=len(ops), frees_space=deletes_only, nbytes=2 * nbytes)
        self.ops = ops
        self.keys = keys

    def apply(self, ctx: WriteContext) -> BatchResult:
        for op, key_bytes in zip(self.ops, self.keys, strict=True):
            ctx.check(op.key, key_bytes, op.if_version, isinstance(op, Put) and op.if_absent)
        txn_id = ctx.next_seq
        hlc = ctx.reserve_hlc(len(self.ops))  # one version per op, in op order
        results = []
        for op, key_bytes in zip(self.ops, self.keys, strict=True):
            if isinstance(op, Put):
                results.append(ctx.put(op.key, key_bytes, op.value, op.content_type, txn_id, hlc))
            else:
                results.append(ctx.delete(op.key, key_bytes, txn_id, hlc))
            hlc += 1
        changed = ctx.next_seq != txn_id
        return BatchResult(txn_id if changed else None, tuple(results))


def _encode_cursor(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def _decode_cursor(cursor: str) -> bytes:
    """The key a cursor resumes after. What is not a scan's cursor (it encodes a key: 1 to
    511 bytes of UTF-8) is refused rather than read as a position."""
    try:
        key = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        if not 1 <= len(key) <= LMDB_MAX_KEY_BYTES:
            raise ValueError("not a key's length")
        key.decode()
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise ValidationError(
            f"cursor {cursor[:40]!r} is not a cursor returned by a scan; pass the 'next' value "
            "of the previous page"
        ) from exc
    return key
