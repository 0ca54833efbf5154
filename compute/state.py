"""Checkpointed state: how operators save and restore what they hold.

A pipeline's state lives in system records under ``compute/pipeline/<name>/``: one ``meta``
record (watermark, counters, the input seq it reflects, the definition's fingerprint, each
operator's small fields) and each stateful operator's data records under its own namespace.
Operators track what changed since the last checkpoint, so a checkpoint writes only that, and
the whole checkpoint commits with its seq in one LMDB transaction
(``Store.write_system_state``): after a crash the pipeline resumes from a state and seq that
agree, and replaying the log from there gives what an uninterrupted run gives.

Values are pickled: accumulators of custom aggregates may be any picklable Python object.
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any, Protocol

__all__ = [
    "Stateful",
    "checkpoint_name",
    "dumps",
    "key_digest",
    "loads",
    "state_prefix",
]


def state_prefix(pipeline: str) -> str:
    return f"compute/pipeline/{pipeline}/"


def checkpoint_name(pipeline: str) -> str:
    """The store checkpoint of a pipeline: the last input seq its saved state reflects. It
    pins change-log retention, so the events needed to resume are never compacted away."""
    return f"pipeline/{pipeline}"


def dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def loads(raw: bytes) -> Any:
    return pickle.loads(raw)  # our own records, written by dumps


def key_digest(key: Any) -> str:
    """A short, stable name for a group key (record names must stay under LMDB's key limit,
    and Python's ``hash`` differs between processes)."""
    return hashlib.blake2b(dumps(key), digest_size=12).hexdigest()


class Stateful(Protocol):
    """A stateful operator. ``name`` is its namespace within the pipeline's records."""

    name: str

    def changes(self) -> tuple[dict[str, bytes], set[str]]:
        """Records written and records deleted since the last call (relative names)."""
        ...

    def meta(self) -> dict[str, Any]:
        """Small fields saved in the pipeline's meta record at every checkpoint."""
        ...

    def restore(self, records: dict[str, bytes], meta: dict[str, Any]) -> None: ...
