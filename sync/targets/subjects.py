"""How change events look in JetStream: subjects, message ids, headers and payloads.

**Subject:** ``<prefix>.<node>.<key tokens>``. The key is split at ``/`` (so ``users/42``
becomes ``users.42`` and a consumer can filter ``kvdb.a.users.>``); in each part, the UTF-8
bytes of ``A-Z a-z 0-9 _ -`` stay as they are and every other byte is written ``%XX``
(upper-case hex), so any key makes valid tokens (``a.b c`` -> ``a%2Eb%20c``); an empty part
is the token ``%``. ``key_of_subject`` reverses it. The token ``_snapshot_end`` after the
node ends a snapshot (no replicated key starts with ``_``).

**Message id** (``Nats-Msg-Id``, JetStream's de-duplication): ``<node>:<epoch>:<seq>`` for a
change event; ``<node>:<epoch>:snapshot:<hlc>.<origin>:<key tokens>`` for a snapshot item, and
``<node>:<epoch>:<seq>:snapshot_end`` for the end of a snapshot taken at ``seq``.

**Headers:** ``Kvdb-Seq`` (the node's change-log seq; absent on snapshot items),
``Kvdb-Epoch`` (the node's store epoch), ``Kvdb-Hlc``, ``Kvdb-Origin``, ``Kvdb-Type``
(``INSERT``, ``UPDATE``, ``DELETE``, ``SNAPSHOT`` or ``SNAPSHOT_END``).

**Payload:** the change event in its JSON form (DESIGN 2: ``seq, type, key, old_value,
new_value, ts, hlc, origin, txn``, ``hlc`` a string, values UTF-8 or base64 with
``"encoding": "base64"``) or its msgpack form (raw bytes, ``hlc`` an integer). A snapshot item
is ``{type: SNAPSHOT, key, deleted, new_value, content_type, ts, hlc, origin}``: the key's
state as of the snapshot; ``SNAPSHOT_END`` is ``{type, seq}``: the state up to ``seq`` is
complete, and events after it follow.
"""

from __future__ import annotations

import base64
import re
from typing import Any, NamedTuple

import msgpack
import orjson

from kvdb import ChangeEvent, EventType, RemoteItem
from kvdb.hlc import hlc_to_ms

__all__ = [
    "HEADER_EPOCH",
    "HEADER_SEQ",
    "HEADER_TYPE",
    "SNAPSHOT_END_TOKEN",
    "Message",
    "event_message",
    "key_of_subject",
    "key_tokens",
    "snapshot_end_message",
    "snapshot_message",
]

HEADER_SEQ = "Kvdb-Seq"
HEADER_EPOCH = "Kvdb-Epoch"
HEADER_HLC = "Kvdb-Hlc"
HEADER_ORIGIN = "Kvdb-Origin"
HEADER_TYPE = "Kvdb-Type"
SNAPSHOT_END_TOKEN = "_snapshot_end"

_KEEP = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_PLAIN = re.compile(r"[A-Za-z0-9_\-]+(?:/[A-Za-z0-9_\-]+)*")  # tokens as they are
_ESCAPES = [chr(b) if b in _KEEP else f"%{b:02X}" for b in range(256)]


class Message(NamedTuple):
    subject: str
    payload: bytes
    headers: dict[str, str]


def key_tokens(key: str) -> str:
    """The subject tokens of ``key`` (see the module docstring)."""
    if _PLAIN.fullmatch(key):
        return key.replace("/", ".")
    return ".".join(
        "".join([_ESCAPES[b] for b in part.encode()]) if part else "%" for part in key.split("/")
    )


def key_of_subject(subject: str, node_subject: str) -> str:
    """The key of a message's ``subject`` published under ``node_subject`` (``<prefix>.<node>``)."""
    if not subject.startswith(node_subject + "."):
        raise ValueError(f"subject {subject!r} is not below {node_subject!r}")
    tokens = subject[len(node_subject) + 1 :].split(".")
    parts = [b"" if token == "%" else _unescape(token) for token in tokens]
    return b"/".join(parts).decode()


def _unescape(token: str) -> bytes:
    out = bytearray()
    index = 0
    while index < len(token):
        char = token[index]
        if char == "%":
            out.append(int(token[index + 1 : index + 3], 16))
            index += 3
        else:
            out.append(ord(char))
            index += 1
    return bytes(out)


def _encode(doc: dict[str, Any], payload: str) -> bytes:
    if payload == "msgpack":
        packed: bytes = msgpack.packb(doc, use_bin_type=True)
        return packed
    return orjson.dumps(doc)


def event_message(
    item: RemoteItem, node_subject: str, node: str, epoch: str, payload: str
) -> Message:
    """The message of a change event (an item of the node's log)."""
    event = item.event or _event_of(item)
    doc = event.to_msgpack() if payload == "msgpack" else event.to_json()
    headers = {
        "Nats-Msg-Id": f"{node}:{epoch}:{event.seq}",
        HEADER_SEQ: str(event.seq),
        HEADER_EPOCH: epoch,
        HEADER_HLC: str(event.hlc),
        HEADER_ORIGIN: event.origin,
        HEADER_TYPE: event.type.value,
    }
    return Message(f"{node_subject}.{key_tokens(event.key)}", _encode(doc, payload), headers)


def snapshot_message(
    item: RemoteItem, node_subject: str, node: str, epoch: str, payload: str
) -> Message:
    """The message of a snapshot item: the key's current version (or its tombstone)."""
    tokens = key_tokens(item.key)
    doc: dict[str, Any] = {
        "type": "SNAPSHOT",
        "key": item.key,
        "deleted": item.deleted,
        "new_value": None if item.deleted else item.value,
        "content_type": item.content_type,
        "ts": hlc_to_ms(item.hlc),
        "hlc": item.hlc,
        "origin": item.origin,
    }
    if payload == "json":
        doc["hlc"] = str(item.hlc)
        value = doc["new_value"]
        if value is not None:
            try:
                doc["new_value"] = value.decode()
            except UnicodeDecodeError:
                doc["new_value"] = base64.b64encode(value).decode()
                doc["encoding"] = "base64"
    headers = {
        "Nats-Msg-Id": f"{node}:{epoch}:snapshot:{item.hlc}.{item.origin}:{tokens}",
        HEADER_EPOCH: epoch,
        HEADER_HLC: str(item.hlc),
        HEADER_ORIGIN: item.origin,
        HEADER_TYPE: "SNAPSHOT",
    }
    return Message(f"{node_subject}.{tokens}", _encode(doc, payload), headers)


def snapshot_end_message(
    seq: int, node_subject: str, node: str, epoch: str, payload: str
) -> Message:
    headers = {
        "Nats-Msg-Id": f"{node}:{epoch}:{seq}:snapshot_end",
        HEADER_SEQ: str(seq),
        HEADER_EPOCH: epoch,
        HEADER_TYPE: "SNAPSHOT_END",
    }
    doc = {"type": "SNAPSHOT_END", "seq": seq}
    return Message(f"{node_subject}.{SNAPSHOT_END_TOKEN}", _encode(doc, payload), headers)


def _event_of(item: RemoteItem) -> ChangeEvent:
    """An event for an item that came without one (built by hand): an UPDATE or DELETE."""
    deleted = item.deleted
    kind = EventType.DELETE if deleted else EventType.UPDATE
    value = None if deleted else item.value
    return ChangeEvent(item.seq, kind, item.key, None, value, item.hlc, item.origin, item.txn,
                       item.content_type)  # fmt: skip
