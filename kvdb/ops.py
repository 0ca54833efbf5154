"""Write operations and their results: the public vocabulary of ``Store`` writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .versions import Version

__all__ = ["BatchResult", "Delete", "Entry", "Put", "ScanPage", "WriteResult"]


class Put(NamedTuple):
    """Set ``key`` to ``value``.

    ``if_version`` makes the write conditional on the key's current version (compare-and-set);
    ``if_absent`` on the key not existing (create-only). Either failing fails the whole batch.
    """

    key: str
    value: bytes
    content_type: str | None = None
    if_version: Version | None = None
    if_absent: bool = False


class Delete(NamedTuple):
    """Delete ``key``, leaving a tombstone. Deleting an absent key is a no-op in a batch;
    ``Store.delete`` reports it as not found."""

    key: str
    if_version: Version | None = None


Op = Put | Delete


class WriteResult(NamedTuple):
    """Outcome of one operation. ``seq`` is None when the op changed nothing (delete of an
    absent key); ``version`` is that of the new value (or of the tombstone)."""

    key: str
    seq: int | None
    version: Version | None


class BatchResult(NamedTuple):
    """``txn`` is the id shared by the batch's events (the seq of its first event), or None
    when the batch changed nothing."""

    txn: int | None
    results: tuple[WriteResult, ...]

    @property
    def last_seq(self) -> int | None:
        seqs = [r.seq for r in self.results if r.seq is not None]
        return seqs[-1] if seqs else None


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    value: bytes
    version: Version
    content_type: str | None

    @property
    def origin(self) -> str:
        """The node that wrote this value."""
        return self.version.origin


@dataclass(frozen=True, slots=True)
class ScanPage:
    """One page of a scan. ``next`` is the cursor to pass for the following page, or None at
    the end of the range."""

    items: tuple[Entry, ...]
    next: str | None
