"""Binary layouts of what kvdb keeps in LMDB.

All integers are big-endian. Layouts start with a format byte so they can evolve.

Data record (sub-db ``data``, key = UTF-8 user key)::

    u8 format | u8 flags | u64 hlc | u8 len(origin) | u8 len(content_type) |
    origin | content_type | value

Change-log entry (sub-db ``changelog``, key = u64 seq, so byte order is seq order)::

    u8 format | u8 type | u64 hlc | u64 txn | u8 len(origin) | u16 len(key) |
    u32 len(old) | u32 len(new) | origin | key | old | new

A missing old or new value has length 0xFFFFFFFF.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .events import ChangeEvent, EventType

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
    "record_hlc",
    "record_is_tombstone",
    "record_value",
]

FORMAT = 1
FLAG_TOMBSTONE = 0x01
ABSENT = 0xFFFFFFFF

_RECORD = struct.Struct(">BBQBB")
_EVENT = struct.Struct(">BBQQBHII")
_SEQ = struct.Struct(">Q")
_EVENT_HLC = struct.Struct(">xxQ")

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


encode_seq = _SEQ.pack  # seq -> its 8-byte big-endian key (a bound method: no wrapper call)


def decode_seq(raw: Raw) -> int:
    return int(_SEQ.unpack(raw)[0])


def encode_record(
    value: bytes, hlc: int, origin: bytes, content_type: bytes, *, tombstone: bool = False
) -> bytes:
    header = _RECORD.pack(
        FORMAT, FLAG_TOMBSTONE if tombstone else 0, hlc, len(origin), len(content_type)
    )
    return b"".join((header, origin, content_type, value))


def decode_record(raw: Raw) -> Record:
    fmt, flags, hlc, origin_len, ctype_len = _RECORD.unpack_from(raw)
    if fmt != FORMAT:
        raise ValueError(f"unknown record format {fmt}")
    start = _RECORD.size
    origin = bytes(raw[start : start + origin_len]).decode()
    start += origin_len
    ctype = bytes(raw[start : start + ctype_len]).decode() if ctype_len else None
    start += ctype_len
    return Record(bytes(raw[start:]), hlc, origin, ctype, bool(flags & FLAG_TOMBSTONE))


def record_value(raw: Raw) -> bytes:
    """The value of an encoded record, without decoding its metadata."""
    return bytes(raw[_RECORD.size + raw[10] + raw[11] :])


def record_is_tombstone(raw: Raw) -> bool:
    return bool(raw[1] & FLAG_TOMBSTONE)


def record_hlc(raw: Raw) -> int:
    return int(_EVENT_HLC.unpack_from(raw)[0])


def encode_event(
    event_type: EventType,
    key: bytes,
    old: bytes | None,
    new: bytes | None,
    hlc: int,
    origin: bytes,
    txn: int,
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
    )
    return b"".join((header, origin, key, old or b"", new or b""))


def decode_event(seq: int, raw: Raw) -> ChangeEvent:
    fmt, type_code, hlc, txn, origin_len, key_len, old_len, new_len = _EVENT.unpack_from(raw)
    if fmt != FORMAT:
        raise ValueError(f"unknown change-log format {fmt} at seq {seq}")
    pos = _EVENT.size
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
    return ChangeEvent(seq, _CODE_TYPES[type_code], key, old, new, hlc, origin, txn)


def event_hlc(raw: Raw) -> int:
    """The HLC of an encoded event, without decoding the rest (retention by age)."""
    return int(_EVENT_HLC.unpack_from(raw)[0])
