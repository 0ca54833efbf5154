"""Binary layouts of what kvdb keeps in LMDB.

All integers are big-endian. Layouts start with a format byte so they can evolve; format 1
(before replication) is still read, with an empty version vector and no content type or source
on events.

Data record (sub-db ``data``, key = UTF-8 user key), format 2::

    u8 format | u8 flags | u64 hlc | u8 len(origin) | u8 len(content_type) | u16 len(vv) |
    origin | content_type | vv | value

Change-log entry (sub-db ``changelog``, key = u64 seq, so byte order is seq order), format 2::

    u8 format | u8 type | u64 hlc | u64 txn | u8 len(origin) | u16 len(key) |
    u32 len(old) | u32 len(new) | u8 len(source) | u8 len(content_type) | u16 len(vv) |
    origin | key | old | new | source | content_type | vv

A missing old or new value has length 0xFFFFFFFF. ``vv`` is the version vector
(``kvdb.versions``; empty when it holds only the value's own dot); ``source`` is the node a
replicated write arrived from (empty for a local write); ``content_type`` is the new value's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .events import ChangeEvent, EventType
from .versions import Version, VersionVector, decode_vector

# What LMDB hands back: bytes, or a memoryview when a transaction is opened with buffers=True.
Raw = bytes | memoryview

__all__ = [
    "ABSENT",
    "Raw",
    "Record",
    "decode_event",
    "decode_record",
    "decode_seq",
    "encode_event",
    "encode_record",
    "encode_seq",
    "event_hlc",
    "record_has_only_own_dot",
    "record_hlc",
    "record_is_tombstone",
    "record_origin",
    "record_value",
]

FORMAT = 2
FLAG_TOMBSTONE = 0x01
ABSENT = 0xFFFFFFFF

_RECORD_V1 = struct.Struct(">BBQBB")
_RECORD = struct.Struct(">BBQBBH")
_EVENT_V1 = struct.Struct(">BBQQBHII")
_EVENT = struct.Struct(">BBQQBHIIBBH")
_SEQ = struct.Struct(">Q")
_EVENT_HLC = struct.Struct(">xxQ")
_U16 = struct.Struct(">H")

_TYPE_CODES = {EventType.INSERT: 0, EventType.UPDATE: 1, EventType.DELETE: 2}
_CODE_TYPES = {code: event_type for event_type, code in _TYPE_CODES.items()}
_INSERT, _UPDATE = EventType.INSERT, EventType.UPDATE


@dataclass(frozen=True, slots=True)
class Record:
    value: bytes
    hlc: int
    origin: str
    content_type: str | None
    tombstone: bool
    vv: bytes = b""  # encoded version vector (kvdb.versions); empty: only the own dot

    @property
    def version(self) -> Version:
        return Version(self.hlc, self.origin)

    def vector(self) -> VersionVector:
        return decode_vector(self.vv, self.hlc, self.origin)


encode_seq = _SEQ.pack  # seq -> its 8-byte big-endian key (a bound method: no wrapper call)


def decode_seq(raw: Raw) -> int:
    return int(_SEQ.unpack(raw)[0])


def encode_record(
    value: bytes,
    hlc: int,
    origin: bytes,
    content_type: bytes,
    *,
    tombstone: bool = False,
    vv: bytes = b"",
) -> bytes:
    header = _RECORD.pack(
        FORMAT, FLAG_TOMBSTONE if tombstone else 0, hlc, len(origin), len(content_type), len(vv)
    )
    return b"".join((header, origin, content_type, vv, value))


def decode_record(raw: Raw) -> Record:
    return Record(*record_fields(raw))


def record_fields(raw: Raw) -> tuple[bytes, int, str, str | None, bool, bytes]:
    """A record's fields as a plain tuple, in ``Record``'s order: for loops over many records
    (a snapshot scan) that would otherwise build a ``Record`` each."""
    fmt = raw[0]
    if fmt == FORMAT:
        _, flags, hlc, origin_len, ctype_len, vv_len = _RECORD.unpack_from(raw)
        start = _RECORD.size
    elif fmt == 1:
        _, flags, hlc, origin_len, ctype_len = _RECORD_V1.unpack_from(raw)
        start, vv_len = _RECORD_V1.size, 0
    else:
        raise ValueError(f"unknown record format {fmt}")
    origin = bytes(raw[start : start + origin_len]).decode()
    start += origin_len
    ctype = bytes(raw[start : start + ctype_len]).decode() if ctype_len else None
    start += ctype_len
    vv = bytes(raw[start : start + vv_len])
    start += vv_len
    return bytes(raw[start:]), hlc, origin, ctype, bool(flags & FLAG_TOMBSTONE), vv


def record_value(raw: Raw) -> bytes:
    """The value of an encoded record, without decoding its metadata."""
    if raw[0] == FORMAT:
        return bytes(raw[_RECORD.size + raw[10] + raw[11] + _U16.unpack_from(raw, 12)[0] :])
    return bytes(raw[_RECORD_V1.size + raw[10] + raw[11] :])


def record_is_tombstone(raw: Raw) -> bool:
    return bool(raw[1] & FLAG_TOMBSTONE)


def record_hlc(raw: Raw) -> int:
    return int(_EVENT_HLC.unpack_from(raw)[0])


def record_origin(raw: Raw) -> str:
    """The origin of an encoded record, without decoding the rest."""
    return bytes(raw[_RECORD.size if raw[0] == FORMAT else _RECORD_V1.size :][: raw[10]]).decode()


def record_has_only_own_dot(raw: Raw, origin: bytes) -> bool:
    """True when the record's version vector is just its own dot from ``origin``: then a new
    write by ``origin`` that saw it has a vector of its own dot only (the common case)."""
    if raw[0] == FORMAT:
        if _U16.unpack_from(raw, 12)[0]:
            return False
        start = _RECORD.size
    else:
        start = _RECORD_V1.size
    return bytes(raw[start : start + raw[10]]) == origin


def encode_event(
    event_type: EventType,
    key: bytes,
    old: bytes | None,
    new: bytes | None,
    hlc: int,
    origin: bytes,
    txn: int,
    source: bytes = b"",
    content_type: bytes = b"",
    vv: bytes = b"",
) -> bytes:
    # Identity tests, not _TYPE_CODES[event_type]: an enum member hashes in Python code, and
    # this runs once per write on the writer thread.
    code = 0 if event_type is _INSERT else 1 if event_type is _UPDATE else 2
    header = _EVENT.pack(
        FORMAT,
        code,
        hlc,
        txn,
        len(origin),
        len(key),
        ABSENT if old is None else len(old),
        ABSENT if new is None else len(new),
        len(source),
        len(content_type),
        len(vv),
    )
    return b"".join((header, origin, key, old or b"", new or b"", source, content_type, vv))


def decode_event(seq: int, raw: Raw) -> ChangeEvent:
    fmt = raw[0]
    if fmt == FORMAT:
        (_, type_code, hlc, txn, origin_len, key_len, old_len, new_len, source_len, ctype_len,
         vv_len) = _EVENT.unpack_from(raw)  # fmt: skip
        pos = _EVENT.size
    elif fmt == 1:
        _, type_code, hlc, txn, origin_len, key_len, old_len, new_len = _EVENT_V1.unpack_from(raw)
        pos, source_len, ctype_len, vv_len = _EVENT_V1.size, 0, 0, 0
    else:
        raise ValueError(f"unknown change-log format {fmt} at seq {seq}")
    origin = bytes(raw[pos : pos + origin_len]).decode()
    pos += origin_len
    key = bytes(raw[pos : pos + key_len]).decode()
    pos += key_len
    old: bytes | None = None
    if old_len != ABSENT:
        old = bytes(raw[pos : pos + old_len])
        pos += old_len
    new: bytes | None = None
    if new_len != ABSENT:
        new = bytes(raw[pos : pos + new_len])
        pos += new_len
    source = bytes(raw[pos : pos + source_len]).decode() if source_len else None
    pos += source_len
    content_type = bytes(raw[pos : pos + ctype_len]).decode() if ctype_len else None
    pos += ctype_len
    vv = bytes(raw[pos : pos + vv_len])
    return ChangeEvent(
        seq, _CODE_TYPES[type_code], key, old, new, hlc, origin, txn, content_type, source, vv
    )


def event_hlc(raw: Raw) -> int:
    """The HLC of an encoded event, without decoding the rest (retention by age)."""
    return int(_EVENT_HLC.unpack_from(raw)[0])
