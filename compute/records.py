"""``RecordBatch``: the records of one input batch as they flow between steps, in columns.

Columns instead of one object per record keep the hot path free of per-record allocations:
a ``map`` replaces ``values`` only, a ``key_by`` adds ``keys``, a ``filter`` compresses every
column once. ``positions[i]`` is the index, in the batch of change events being processed, of
the event record ``i`` came from: it orders records of different branches (joins process them
in seq order) and finds the watermark as of that event (``marks[positions[i]]``).
"""

from __future__ import annotations

from itertools import compress
from typing import Any

__all__ = ["RecordBatch"]


class RecordBatch:
    __slots__ = ("keys", "positions", "times", "values")

    def __init__(
        self,
        times: list[int],
        positions: list[int],
        keys: list[Any] | None,
        values: list[Any],
    ) -> None:
        self.times = times
        self.positions = positions
        self.keys = keys
        self.values = values

    @classmethod
    def empty(cls, keyed: bool = False) -> RecordBatch:
        return cls([], [], [] if keyed else None, [])

    def __len__(self) -> int:
        return len(self.values)

    def with_values(self, values: list[Any]) -> RecordBatch:
        return RecordBatch(self.times, self.positions, self.keys, values)

    def with_keys(self, keys: list[Any]) -> RecordBatch:
        return RecordBatch(self.times, self.positions, keys, self.values)

    def select(self, flags: list[Any]) -> RecordBatch:
        """The records whose flag is true."""
        return RecordBatch(
            list(compress(self.times, flags)),
            list(compress(self.positions, flags)),
            None if self.keys is None else list(compress(self.keys, flags)),
            list(compress(self.values, flags)),
        )
