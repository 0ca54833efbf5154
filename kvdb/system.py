"""System records: definitions the other packages persist (stream configs, routes, ...).

They live in their own sub-database, outside the user key space, and produce no change
events: they describe the node, they are not its data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import lmdb

from .checkpoints import SetCheckpointTask
from .txn import WriteContext
from .writer import WriteTask

__all__ = [
    "DeleteSystemRecordTask",
    "PutSystemRecordTask",
    "SystemStateTask",
    "list_system_records",
]


def list_system_records(txn: lmdb.Transaction, db: Any, prefix: str) -> list[tuple[str, bytes]]:
    raw_prefix = prefix.encode()
    records = []
    with txn.cursor(db=db) as cursor:
        if cursor.set_range(raw_prefix):
            for key, value in cursor:
                if not bytes(key).startswith(raw_prefix):
                    break
                records.append((bytes(key).decode(), bytes(value)))
    return records


class PutSystemRecordTask(WriteTask):
    __slots__ = ("key", "value")

    def __init__(self, key: str, value: bytes) -> None:
        super().__init__()
        self.key = key
        self.value = value

    def apply(self, ctx: WriteContext) -> None:
        ctx.txn.put(self.key.encode(), self.value, db=ctx.dbs["system"])


class DeleteSystemRecordTask(WriteTask):
    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        super().__init__(frees_space=True)
        self.key = key

    def apply(self, ctx: WriteContext) -> bool:
        return bool(ctx.txn.delete(self.key.encode(), db=ctx.dbs["system"]))


class SystemStateTask(WriteTask):
    """Put and delete several system records and (optionally) set a checkpoint, atomically:
    a consumer's derived state and the input seq it reflects can never disagree."""

    __slots__ = ("checkpoint", "deletes", "puts")

    def __init__(
        self,
        puts: Mapping[str, bytes],
        deletes: Iterable[str],
        checkpoint: SetCheckpointTask | None,
    ) -> None:
        super().__init__(size=max(1, len(puts)))
        self.puts = dict(puts)
        self.deletes = list(deletes)
        self.checkpoint = checkpoint

    def apply(self, ctx: WriteContext) -> None:
        db = ctx.dbs["system"]
        for key in self.deletes:
            ctx.txn.delete(key.encode(), db=db)
        for key, value in self.puts.items():
            ctx.txn.put(key.encode(), value, db=db)
        if self.checkpoint is not None:
            self.checkpoint.apply(ctx)
