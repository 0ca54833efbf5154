"""Versions and version vectors: what replication compares (REPLICATION 1 and 3).

A value's **version** is ``(hlc, origin)``: the hybrid-logical-clock timestamp it was written
with and the id of the node that wrote it. Versions order on ``hlc``, then on ``origin`` (byte
order, which for UTF-8 is code-point order, so plain ``str`` comparison agrees), and two nodes
can never mint equal versions because their ids differ. Its string form, used for ETags and
``version`` fields, is the decimal hlc, a ``.``, and the origin: ``117705458963578880.a``.

A **version vector** maps each origin that ever wrote the key to the highest hlc of it that the
value has seen, the value's own dot included. It tells "B overwrote A's value after seeing it"
(B's vector covers A's dot) from "A and B wrote concurrently" (neither covers the other).

Encoded vectors are stored with each record and each change event. The empty encoding means
"only the value's own dot", which is what every key written by a single node carries, so a
node that never replicates pays nothing for vectors::

    u16 count | count x (u8 len(origin) | origin | u64 hlc)      (sorted by origin)
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from typing import NamedTuple

__all__ = [
    "ANY_VERSION",
    "NODE_ID_PATTERN",
    "NO_VERSION",
    "Version",
    "VersionVector",
    "check_node_id",
    "decode_vector",
    "encode_vector",
    "merge_vectors",
    "vector_of",
]

# Node ids appear in ETags, HTTP headers, URLs and file names: keep them to a safe alphabet.
NODE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")

VersionVector = dict[str, int]

_COUNT = struct.Struct(">H")
_HLC = struct.Struct(">Q")


def check_node_id(node_id: str) -> str:
    """Return ``node_id`` or raise ValueError saying what a node id may contain."""
    if not isinstance(node_id, str) or not NODE_ID_PATTERN.fullmatch(node_id):
        raise ValueError(
            f"node id {node_id!r} is not valid: use 1 to 64 characters of letters, digits, "
            "'_', '.' and '-', starting with a letter or digit"
        )
    return node_id


class Version(NamedTuple):
    """The version of a value: ``(hlc, origin)``, ordered on both."""

    hlc: int
    origin: str

    def __str__(self) -> str:
        return f"{self.hlc}.{self.origin}"

    @classmethod
    def parse(cls, text: str) -> Version:
        """The version written as ``<hlc>.<origin>``; ValueError if it is not one."""
        hlc, dot, origin = text.partition(".")
        if not dot or not hlc.isascii() or not hlc.isdigit() or not origin:
            raise ValueError(
                f"{text[:80]!r} is not a version: expected '<hlc>.<origin node id>', as in "
                "the ETag or 'version' field of a read"
            )
        value = int(hlc)
        if value >= 1 << 64:
            raise ValueError(f"{text[:80]!r} is not a version: the hlc exceeds 64 bits")
        return cls(value, origin)


# Conditions that are no version of a value (no value has an hlc below 1): as ``if_version``,
# ANY_VERSION holds for any current value (If-Match: *), NO_VERSION never holds (an entity
# tag that names no version kvdb could hold).
ANY_VERSION = Version(-1, "*")
NO_VERSION = Version(0, "")


def encode_vector(
    vector: Mapping[str, int], hlc: int | None = None, origin: str | None = None
) -> bytes:
    """The encoding of ``vector``; for a value whose own dot is ``(hlc, origin)``, empty when
    the vector holds nothing but that dot."""
    if origin is not None and len(vector) == 1 and vector.get(origin) == hlc:
        return b""
    parts = [_COUNT.pack(len(vector))]
    for name in sorted(vector):
        raw = name.encode()
        parts.append(bytes((len(raw),)))
        parts.append(raw)
        parts.append(_HLC.pack(vector[name]))
    return b"".join(parts)


def decode_vector(raw: bytes | memoryview, hlc: int, origin: str) -> VersionVector:
    """The vector of a value with dot ``(hlc, origin)`` from its encoding."""
    if not raw:
        return {origin: hlc}
    (count,) = _COUNT.unpack_from(raw)
    pos = _COUNT.size
    vector: VersionVector = {}
    for _ in range(count):
        size = raw[pos]
        pos += 1
        name = bytes(raw[pos : pos + size]).decode()
        pos += size
        (vector[name],) = _HLC.unpack_from(raw, pos)
        pos += _HLC.size
    return vector


def merge_vectors(a: Mapping[str, int], b: Mapping[str, int]) -> VersionVector:
    """The pointwise maximum ``a ⊔ b``."""
    merged = dict(a)
    for name, hlc in b.items():
        if hlc > merged.get(name, -1):
            merged[name] = hlc
    return merged


def vector_of(vector: Mapping[str, int] | None, hlc: int, origin: str) -> VersionVector:
    """``vector`` with the dot ``(hlc, origin)`` added: the vector of a write that saw it."""
    merged = dict(vector or {})
    if hlc > merged.get(origin, -1):
        merged[origin] = hlc
    return merged
