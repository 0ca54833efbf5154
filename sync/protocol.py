"""The replication wire protocol (REPLICATION 2): msgpack bodies over HTTP, encoded and
checked here for both ends.

``POST /sync/handshake``  ``{source, source_epoch, target}`` ->
``{node_id, epoch, checkpoint, checkpoint_epoch}``: who the receiver is, and how far it has
applied the sender's log (0 for an incarnation of the sender it does not know).

``POST /sync/apply``  ``{source, source_epoch, target_epoch, mode, prev_seq, last_seq,
items}`` -> ``{checkpoint, applied, skipped, conflicts, duplicate}``. ``mode`` is ``log`` (the
sender's log ``(prev_seq, last_seq]``), ``snapshot`` (a page of current versions) or
``snapshot_end`` (the snapshot was of the sender's state at ``last_seq``: resume after it).
Each item is ``[seq, key, deleted, value, content_type, hlc, origin, vector, txn]`` with
``vector`` a map origin -> hlc.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import msgpack

from kvdb import ApplyResult, ChangeEvent, EventType, RemoteBatch, RemoteItem
from kvdb.versions import check_node_id

from .errors import InvalidSyncMessage

__all__ = [
    "CONTENT_TYPE",
    "ApplyRequest",
    "Hello",
    "Welcome",
    "decode_apply",
    "decode_apply_result",
    "decode_hello",
    "decode_welcome",
    "encode_apply",
    "encode_apply_result",
    "encode_hello",
    "encode_welcome",
    "item_of",
]

CONTENT_TYPE = "application/msgpack"
Mode = Literal["log", "snapshot", "snapshot_end"]
_MODES = ("log", "snapshot", "snapshot_end")
_U64 = (1 << 64) - 1
_tuple_new = tuple.__new__


class Hello(NamedTuple):
    """The sender's side of a handshake. ``checkpoint`` is how far the sender's own records
    say the target has its log: never sent to a node (whose own checkpoint is the authority),
    but a JetStream bridge resumes from the larger of it and what the stream holds."""

    source: str
    source_epoch: str
    target: str
    checkpoint: int = 0


class Welcome(NamedTuple):
    """The receiver's side of a handshake."""

    node_id: str
    epoch: str
    checkpoint: int  # how far it applied the sender's log, in the sender's current epoch


class ApplyRequest(NamedTuple):
    batch: RemoteBatch
    mode: Mode


def item_of(event: ChangeEvent) -> RemoteItem:
    """The replicated form of a committed event."""
    deleted = event.type is EventType.DELETE
    return RemoteItem(
        event.seq,
        event.key,
        deleted,
        None if deleted else event.new_value,
        event.content_type,
        event.hlc,
        event.origin,
        event.vector(),
        event.txn,
        event,
    )


# -- encoding ------------------------------------------------------------------------------


def _pack(doc: dict[str, Any]) -> bytes:
    packed: bytes = msgpack.packb(doc, use_bin_type=True, default=_plain)
    return packed


def _plain(value: Any) -> Any:
    """What msgpack packs of a type it does not know: a mapping (a version vector) as a map."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot send a {type(value).__name__} in a sync message")


def encode_hello(hello: Hello) -> bytes:
    return _pack({"source": hello.source, "source_epoch": hello.source_epoch,
                  "target": hello.target})  # fmt: skip


def encode_welcome(welcome: Welcome) -> bytes:
    return _pack(welcome._asdict())


def encode_apply(batch: RemoteBatch, mode: Mode = "log") -> bytes:
    # An item on the wire is a RemoteItem's first nine fields, in its order.
    items = [item[:9] for item in batch.items]
    return _pack({
        "source": batch.source,
        "source_epoch": batch.source_epoch,
        "target_epoch": batch.target_epoch,
        "mode": mode,
        "prev_seq": batch.prev_seq,
        "last_seq": batch.last_seq,
        "items": items,
    })  # fmt: skip


def encode_apply_result(result: ApplyResult) -> bytes:
    return _pack(result._asdict())


# -- decoding, with checks: what arrives may be hostile -------------------------------------


def _unpack(body: bytes, what: str) -> dict[str, Any]:
    try:
        doc = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException, TypeError) as exc:
        raise InvalidSyncMessage(f"the {what} body is not valid msgpack: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidSyncMessage(f"the {what} body must be a msgpack map")
    return doc


def _get(doc: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        expected = (
            kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        )
        raise InvalidSyncMessage(f"{what}.{name} must be {expected}, got {value!r:.60}")
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= _U64:
        raise InvalidSyncMessage(f"{what}.{name} must be within 0..2**64-1, got {value}")
    return value


def _node(doc: dict[str, Any], name: str, what: str) -> str:
    value = _get(doc, name, str, what)
    try:
        return check_node_id(value)
    except ValueError as exc:
        raise InvalidSyncMessage(f"{what}.{name}: {exc}") from None


def decode_hello(body: bytes) -> Hello:
    doc = _unpack(body, "handshake")
    return Hello(
        _node(doc, "source", "handshake"),
        _get(doc, "source_epoch", str, "handshake"),
        _node(doc, "target", "handshake"),
    )


def decode_welcome(body: bytes) -> Welcome:
    doc = _unpack(body, "handshake reply")
    return Welcome(
        _node(doc, "node_id", "handshake reply"),
        _get(doc, "epoch", str, "handshake reply"),
        _get(doc, "checkpoint", int, "handshake reply"),
    )


def decode_apply(body: bytes, max_items: int) -> ApplyRequest:
    doc = _unpack(body, "apply")
    mode = doc.get("mode", "log")
    if mode not in _MODES:
        raise InvalidSyncMessage(f"apply.mode must be one of {', '.join(_MODES)}, got {mode!r}")
    raw_items = _get(doc, "items", list, "apply")
    if len(raw_items) > max_items:
        raise InvalidSyncMessage(
            f"apply carries {len(raw_items)} items; the limit is {max_items}: send smaller batches"
        )
    target_epoch = doc.get("target_epoch")
    if target_epoch is not None and not isinstance(target_epoch, str):
        raise InvalidSyncMessage("apply.target_epoch must be a string or null")
    nodes: set[str] = set()  # node ids already checked: a batch names few, many times
    batch = RemoteBatch(
        _node(doc, "source", "apply"),
        _get(doc, "source_epoch", str, "apply"),
        _get(doc, "prev_seq", int, "apply"),
        _get(doc, "last_seq", int, "apply"),
        [_quick_item(raw, nodes) or _decode_item(raw, i) for i, raw in enumerate(raw_items)],
        target_epoch,
        snapshot=mode == "snapshot",
    )
    return ApplyRequest(batch, mode)


def _quick_item(raw: Any, nodes: set[str]) -> RemoteItem | None:
    """The item if it passes every check of ``_decode_item``, tested the cheap way (exact
    types, node ids checked once per batch); None to let ``_decode_item`` check it and say
    what is wrong. Decoding is a large part of a receiver's time per item."""
    if type(raw) is not list or len(raw) != 9:
        return None
    seq, key, deleted, value, ctype, hlc, origin, vector, txn = raw
    if not (
        type(seq) is int and type(hlc) is int and type(txn) is int
        and 0 <= seq <= _U64 and 0 <= hlc <= _U64 and 0 <= txn <= _U64
        and type(key) is str and type(deleted) is bool
        and (value is None or type(value) is bytes) and (ctype is None or type(ctype) is str)
        and type(vector) is dict and vector and _known(origin, nodes)
    ):  # fmt: skip
        return None
    for name, hlc_of in vector.items():
        if not (_known(name, nodes) and type(hlc_of) is int and 0 <= hlc_of <= _U64):
            return None
    # tuple.__new__ skips the NamedTuple's generated Python __new__ (a batch has thousands)
    return _tuple_new(RemoteItem, (seq, key, deleted, value, ctype, hlc, origin, vector, txn, None))


def _known(node: Any, nodes: set[str]) -> bool:
    if type(node) is not str:
        return False
    if node in nodes:
        return True
    try:
        check_node_id(node)
    except ValueError:
        return False
    nodes.add(node)
    return True


def _decode_item(raw: Any, index: int) -> RemoteItem:
    where = f"apply.items[{index}]"
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes) or len(raw) != 9:
        raise InvalidSyncMessage(
            f"{where} must be [seq, key, deleted, value, content_type, hlc, origin, vector, txn]"
        )
    seq, key, deleted, value, ctype, hlc, origin, vector, txn = raw
    fields = {"seq": seq, "key": key, "deleted": deleted, "hlc": hlc, "origin": origin,
              "txn": txn}  # fmt: skip
    _get(fields, "seq", int, where)
    _get(fields, "key", str, where)
    _get(fields, "deleted", bool, where)
    _get(fields, "hlc", int, where)
    _get(fields, "txn", int, where)
    _node(fields, "origin", where)
    if not (value is None or isinstance(value, bytes)):
        raise InvalidSyncMessage(f"{where}.value must be bytes or nil")
    if not (ctype is None or isinstance(ctype, str)):
        raise InvalidSyncMessage(f"{where}.content_type must be a string or nil")
    if not isinstance(vector, dict) or not vector:
        raise InvalidSyncMessage(f"{where}.vector must be a non-empty map origin -> hlc")
    for name, hlc_of in vector.items():
        _node({"o": name}, "o", f"{where}.vector")
        _get({"h": hlc_of}, "h", int, f"{where}.vector")
    return RemoteItem(seq, key, deleted, value, ctype, hlc, origin, vector, txn)


def decode_apply_result(body: bytes) -> ApplyResult:
    doc = _unpack(body, "apply reply")
    return ApplyResult(
        _get(doc, "checkpoint", int, "apply reply"),
        _get(doc, "applied", int, "apply reply"),
        _get(doc, "skipped", int, "apply reply"),
        _get(doc, "conflicts", int, "apply reply"),
        bool(doc.get("duplicate", False)),
    )
