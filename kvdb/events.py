"""The change event: what every committed mutation becomes, and its wire forms."""

from __future__ import annotations

import base64
import enum
from typing import Any, NamedTuple

from .hlc import hlc_to_ms
from .versions import Version, VersionVector, decode_vector

__all__ = ["ChangeEvent", "EventType", "decode_text_or_base64", "value_fields"]


class EventType(enum.StrEnum):
    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


class ChangeEvent(NamedTuple):
    """One committed mutation.

    ``seq`` is node-local, gapless and strictly increasing; ``txn`` is shared by the events of
    one atomic write (it equals the seq of that write's first event); ``new_value`` is None only
    for DELETE, and ``old_value`` is None for INSERT (and for the DELETE of a key this node never
    held, which replication records so the tombstone travels on). ``(hlc, origin)`` is the
    version the write carries on every node; ``source`` is the node a replicated write arrived
    from (None for a local write); ``vv`` is the encoded version vector (``kvdb.versions``).
    A NamedTuple because the writer makes one per mutation on its hot path, and immutable
    because many consumers share each instance.
    """

    seq: int
    type: EventType
    key: str
    old_value: bytes | None
    new_value: bytes | None
    hlc: int
    origin: str
    txn: int
    content_type: str | None = None
    source: str | None = None
    vv: bytes = b""

    @property
    def ts(self) -> int:
        """Commit wall time in ms since the epoch, from the HLC."""
        return hlc_to_ms(self.hlc)

    @property
    def version(self) -> Version:
        return Version(self.hlc, self.origin)

    def vector(self) -> VersionVector:
        """The version vector of the written value (its own dot at least)."""
        return decode_vector(self.vv, self.hlc, self.origin)

    def to_json(self) -> dict[str, Any]:
        """JSON form (DESIGN 2): ``hlc`` as a string because it exceeds 2**53; values as UTF-8
        strings, or base64 with ``"encoding": "base64"`` if either is not valid UTF-8."""
        old, new, binary = _text_pair(self.old_value, self.new_value)
        doc: dict[str, Any] = {
            "seq": self.seq,
            "type": self.type.value,
            "key": self.key,
            "old_value": old,
            "new_value": new,
            "ts": self.ts,
            "hlc": str(self.hlc),
            "origin": self.origin,
            "txn": self.txn,
        }
        if binary:
            doc["encoding"] = "base64"
        if self.content_type is not None:
            doc["content_type"] = self.content_type
        if self.source is not None:
            doc["source"] = self.source
        return doc

    def to_msgpack(self) -> dict[str, Any]:
        """msgpack form: the same names, values as raw bytes, ``hlc`` as an integer."""
        return {
            "seq": self.seq,
            "type": self.type.value,
            "key": self.key,
            "old_value": self.old_value,
            "new_value": self.new_value,
            "ts": self.ts,
            "hlc": self.hlc,
            "origin": self.origin,
            "txn": self.txn,
            "content_type": self.content_type,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ChangeEvent:
        binary = doc.get("encoding") == "base64"
        return cls(
            seq=int(doc["seq"]),
            type=EventType(doc["type"]),
            key=doc["key"],
            old_value=decode_text_or_base64(doc.get("old_value"), binary),
            new_value=decode_text_or_base64(doc.get("new_value"), binary),
            hlc=int(doc["hlc"]),
            origin=doc["origin"],
            txn=int(doc["txn"]),
            content_type=doc.get("content_type"),
            source=doc.get("source"),
        )


def value_fields(value: bytes) -> dict[str, str]:
    """A value in a JSON document: ``{"value": text}`` if it is UTF-8, else
    ``{"value": base64, "encoding": "base64"}`` (the JSON form of DESIGN 2)."""
    try:
        return {"value": value.decode()}
    except UnicodeDecodeError:
        return {"value": base64.b64encode(value).decode(), "encoding": "base64"}


def decode_text_or_base64(value: str | None, binary: bool) -> bytes | None:
    if value is None:
        return None
    return base64.b64decode(value) if binary else value.encode()


def _text_pair(old: bytes | None, new: bytes | None) -> tuple[str | None, str | None, bool]:
    try:
        return (
            None if old is None else old.decode(),
            None if new is None else new.decode(),
            False,
        )
    except UnicodeDecodeError:
        return (
            None if old is None else base64.b64encode(old).decode(),
            None if new is None else base64.b64encode(new).decode(),
            True,
        )
