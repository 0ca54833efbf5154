"""What happens inside one write transaction: data, change log and meta move together.

A ``WriteContext`` wraps the writer thread's LMDB write transaction. Every mutation goes
through ``put`` or ``delete`` here, which write the data record and append the change event
in the same transaction, so data and log can never disagree.
"""

from __future__ import annotations

import struct
from typing import Any

import lmdb

from .codec import (
    Raw,
    decode_record,
    encode_event,
    encode_record,
    encode_seq,
    record_has_only_own_dot,
    record_hlc,
    record_is_tombstone,
    record_origin,
    record_value,
)
from .errors import PreconditionFailed
from .events import ChangeEvent, EventType
from .hlc import HybridLogicalClock
from .ops import WriteResult
from .versions import ANY_VERSION, NO_VERSION, Version, encode_vector, vector_of

__all__ = ["META_HLC", "META_LAST_SEQ", "META_NODE_ID", "WriteContext"]

META_LAST_SEQ = b"last_seq"
META_HLC = b"hlc"
META_NODE_ID = b"node_id"
_U64 = struct.Struct(">Q")
_tuple_new = tuple.__new__
_HLC_BLOCK = 64  # versions reserved at a time for single writes (the HLC counter has 65,536)


class WriteContext:
    """State of one group-commit transaction. ``seq`` is the last seq assigned so far; the
    writer commits it to meta together with the data, or discards the context on abort."""

    def __init__(
        self,
        txn: lmdb.Transaction,
        dbs: dict[str, Any],
        clock: HybridLogicalClock,
        origin: str,
        last_seq: int,
    ) -> None:
        self.txn = txn
        self.dbs = dbs
        self.clock = clock
        self.origin = origin
        self._origin_bytes = origin.encode()
        self.seq = last_seq
        self.events: list[ChangeEvent] = []
        self._data = dbs["data"]
        self._tombstones = dbs["tombstones"]
        # Cursors stay positioned between operations: LMDB then finds neighbouring keys
        # without descending the tree again, and appends to the log at its end.
        self._data_cursor = self.data_cursor = txn.cursor(db=self._data)
        self._log_cursor = txn.cursor(db=dbs["changelog"])
        self._hlc_next = self._hlc_end = 0

    @property
    def next_seq(self) -> int:
        return self.seq + 1

    def next_hlc(self) -> int:
        """A fresh version for one write."""
        hlc = self._hlc_next
        if hlc == self._hlc_end:
            return self.reserve_hlc(1)
        self._hlc_next = hlc + 1
        return hlc

    def reserve_hlc(self, count: int) -> int:
        """The first of ``count`` consecutive fresh versions. They come from blocks reserved
        from the clock (one clock read and lock serves many single writes of a group), so
        versions still increase with seq; unused ones are skipped, leaving only a gap."""
        hlc = self._hlc_next
        if self._hlc_end - hlc < count:
            block = max(count, _HLC_BLOCK)
            hlc = self.clock.reserve(block)
            self._hlc_end = hlc + block
        self._hlc_next = hlc + count
        return hlc

    def current_version(self, key: bytes) -> Version | None:
        """Version of the key's live value, or None if absent or deleted."""
        raw = self.txn.get(key, db=self._data)
        if raw is None or record_is_tombstone(raw):
            return None
        return Version(record_hlc(raw), record_origin(raw))

    def check(
        self, key: str, key_bytes: bytes, if_version: Version | None, if_absent: bool
    ) -> None:
        """Raise ``PreconditionFailed`` unless the key's current version satisfies the
        condition (``if_absent``: no live value; ``if_version``: exactly that version, any
        live value for ``ANY_VERSION``, never for ``NO_VERSION``)."""
        if if_version is None and not if_absent:
            return
        current = self.current_version(key_bytes)
        if if_absent and current is not None:
            raise PreconditionFailed(
                f"key {key!r} already exists (version {current}); If-None-Match: * requires "
                "that it does not",
                key=key,
                current_version=current,
            )
        if if_version is None or (if_version == ANY_VERSION and current is not None):
            return
        if current != if_version:
            found = "absent" if current is None else f"at version {current}"
            wanted = {ANY_VERSION: "present", NO_VERSION: "at the version given"}.get(
                if_version, f"at version {if_version}"
            )
            raise PreconditionFailed(
                f"key {key!r} is {found}, not {wanted}: re-read it and retry with its current "
                "version",
                key=key,
                current_version=current,
            )

    def put(
        self,
        key: str,
        key_bytes: bytes,
        value: bytes,
        content_type: str | None,
        txn_id: int,
        hlc: int | None = None,
    ) -> WriteResult:
        """Set ``key``; ``hlc`` is its version (one from ``reserve_hlc``), or a fresh one."""
        if type(value) is not bytes:
            value = bytes(value)
        if hlc is None:
            hlc = self.next_hlc()
        ctype = content_type.encode() if content_type else b""
        record = encode_record(value, hlc, self._origin_bytes, ctype)
        raw_old = self._data_cursor.replace(key_bytes, record)
        vv = b""
        if raw_old is not None and not record_has_only_own_dot(raw_old, self._origin_bytes):
            # The key carries other nodes' writes: this one saw them, so its vector covers
            # theirs. Rare (keys written by one node never get here), so written twice.
            vv = self._vector_after(raw_old, hlc)
            self._data_cursor.put(
                key_bytes, encode_record(value, hlc, self._origin_bytes, ctype, vv=vv)
            )
        if raw_old is None or record_is_tombstone(raw_old):
            event_type, old = EventType.INSERT, None
        else:
            event_type, old = EventType.UPDATE, record_value(raw_old)
        return self._append(
            event_type, key, key_bytes, old, value, hlc, self.origin, txn_id, ctype, vv
        )

    def delete(
        self, key: str, key_bytes: bytes, txn_id: int, hlc: int | None = None
    ) -> WriteResult:
        raw_old = self.txn.get(key_bytes, db=self._data)
        if raw_old is None or record_is_tombstone(raw_old):
            return WriteResult(key, None, None)
        old = record_value(raw_old)
        if hlc is None:
            hlc = self.next_hlc()
        vv = b""
        if not record_has_only_own_dot(raw_old, self._origin_bytes):
            vv = self._vector_after(raw_old, hlc)
        tombstone = encode_record(b"", hlc, self._origin_bytes, b"", tombstone=True, vv=vv)
        self._data_cursor.put(key_bytes, tombstone)
        self.index_tombstone(key_bytes, hlc, self.seq + 1)
        return self._append(
            EventType.DELETE, key, key_bytes, old, None, hlc, self.origin, txn_id, b"", vv
        )

    def _vector_after(self, raw_old: Raw, hlc: int) -> bytes:
        """The encoded vector of a local write with version ``hlc`` that saw ``raw_old``."""
        old = decode_record(raw_old)
        return encode_vector(vector_of(old.vector(), hlc, self.origin), hlc, self.origin)

    def index_tombstone(self, key_bytes: bytes, hlc: int, seq: int) -> None:
        """Note a tombstone for garbage collection, oldest first: ``hlc | key -> seq``."""
        self.txn.put(_U64.pack(hlc) + key_bytes, _U64.pack(seq), db=self._tombstones)

    def observe(self, hlc: int) -> None:
        """Merge a remote version into the clock, so every later local write beats it; the
        versions reserved for this group so far are dropped (they might not)."""
        self.clock.observe(hlc)
        self._hlc_next = self._hlc_end = 0

    def _append(
        self,
        event_type: EventType,
        key: str,
        key_bytes: bytes,
        old: bytes | None,
        new: bytes | None,
        hlc: int,
        origin: str,
        txn_id: int,
        ctype: bytes = b"",
        vv: bytes = b"",
        source: str | None = None,
    ) -> WriteResult:
        seq = self.log_event(event_type, key, key_bytes, old, new, hlc, origin, txn_id, ctype, vv,
                        source)  # fmt: skip
        return _tuple_new(WriteResult, (key, seq, _tuple_new(Version, (hlc, origin))))

    def log_event(
        self,
        event_type: EventType,
        key: str,
        key_bytes: bytes,
        old: bytes | None,
        new: bytes | None,
        hlc: int,
        origin: str,
        txn_id: int,
        ctype: bytes,
        vv: bytes,
        source: str | None,
    ) -> int:
        """Append an event to the change log (and to this group's events); its seq. A
        replicated write keeps its own ``hlc`` and ``origin`` and records its ``source``."""
        seq = self.seq = self.seq + 1
        origin_bytes = self._origin_bytes if origin is self.origin else origin.encode()
        raw = encode_event(
            event_type,
            key_bytes,
            old,
            new,
            hlc,
            origin_bytes,
            txn_id,
            source.encode() if source else b"",
            ctype,
            vv,
        )
        self._log_cursor.put(encode_seq(seq), raw, append=True)
        # tuple.__new__ skips the NamedTuples' generated Python __new__: the writer makes two
        # of them per mutation on its hottest path.
        content_type = ctype.decode() if ctype else None
        event = (seq, event_type, key, old, new, hlc, origin, txn_id, content_type, source, vv)
        self.events.append(_tuple_new(ChangeEvent, event))
        return seq

    def finish(self) -> None:
        """Persist the seq and HLC high-water marks; called once, just before commit."""
        meta = self.dbs["meta"]
        if self.events:
            self.txn.put(META_LAST_SEQ, _U64.pack(self.seq), db=meta)
        self.txn.put(META_HLC, _U64.pack(self.clock.last), db=meta)


def read_u64(txn: lmdb.Transaction, key: bytes, db: Any) -> int | None:
    raw = txn.get(key, db=db)
    return None if raw is None else int(_U64.unpack(raw)[0])
