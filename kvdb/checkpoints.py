"""Durable consumer checkpoints, kept in the ``checkpoints`` sub-database.

A checkpoint ``(name, seq)`` says "consumer *name* has processed every event up to and
including *seq*" and resumes with ``since=seq``. A pinning checkpoint also holds back change-log
retention (soft limits only; the hard cap still applies).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import lmdb

from .hlc import wall_clock_ms
from .txn import WriteContext
from .writer import WriteTask

__all__ = ["Checkpoint", "DeleteCheckpointTask", "SetCheckpointTask", "list_checkpoints"]

_VALUE = struct.Struct(">QQB")  # seq, updated_ms, pin


@dataclass(frozen=True, slots=True)
class Checkpoint:
    name: str
    seq: int
    updated_ms: int
    pin: bool


def _decode(name: bytes, raw: bytes) -> Checkpoint:
    seq, updated_ms, pin = _VALUE.unpack(raw)
    return Checkpoint(name.decode(), seq, updated_ms, bool(pin))


def get_checkpoint(txn: lmdb.Transaction, db: Any, name: str) -> Checkpoint | None:
    raw = txn.get(name.encode(), db=db)
    return None if raw is None else _decode(name.encode(), bytes(raw))


def list_checkpoints(txn: lmdb.Transaction, db: Any) -> list[Checkpoint]:
    with txn.cursor(db=db) as cursor:
        return [_decode(bytes(key), bytes(raw)) for key, raw in cursor]


def min_pinned_seq(txn: lmdb.Transaction, db: Any) -> int | None:
    pins = [cp.seq for cp in list_checkpoints(txn, db) if cp.pin]
    return min(pins) if pins else None


class SetCheckpointTask(WriteTask):
    __slots__ = ("name", "pin", "seq")

    def __init__(self, name: str, seq: int, pin: bool) -> None:
        super().__init__(frees_space=True)  # lets compaction advance
        self.name = name
        self.seq = seq
        self.pin = pin

    def apply(self, ctx: WriteContext) -> Checkpoint:
        updated = wall_clock_ms()
        ctx.txn.put(
            self.name.encode(), _VALUE.pack(self.seq, updated, self.pin), db=ctx.dbs["checkpoints"]
        )
        return Checkpoint(self.name, self.seq, updated, self.pin)


class DeleteCheckpointTask(WriteTask):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        super().__init__(frees_space=True)
        self.name = name

    def apply(self, ctx: WriteContext) -> bool:
        return bool(ctx.txn.delete(self.name.encode(), db=ctx.dbs["checkpoints"]))
