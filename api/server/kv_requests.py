"""Parsing requests to the ``/kv`` endpoints and shaping their answers; no I/O here."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote_to_bytes

import msgpack
import orjson

from kvdb import Delete, Entry, Put, Version
from kvdb.events import value_fields

from .errors import BadRequest, PayloadTooLarge

__all__ = [
    "etag",
    "etags",
    "item_json",
    "key_from_raw_path",
    "parse_batch",
    "too_large",
    "version_header",
]


def key_from_raw_path(raw_path: bytes) -> str:
    """The key in ``/kv/{key}``, percent-decoded from the raw path as strict UTF-8: servers
    decode ``path`` with replacement characters, which would map different keys to one."""
    try:
        return unquote_to_bytes(raw_path.split(b"?", 1)[0][4:]).decode()
    except UnicodeDecodeError as exc:
        raise BadRequest(
            "the key is not valid UTF-8 once percent-decoded; keys are UTF-8 strings",
            code="invalid_key",
        ) from exc


def too_large(what: str, size: int | None, limit: int, setting: str) -> PayloadTooLarge:
    said = f"is {size} bytes" if size is not None else f"exceeds {limit} bytes"
    return PayloadTooLarge(
        f"the {what} {said}; the limit is {limit} bytes (node.limits.{setting}): send less or "
        "raise the limit",
        size=size,
        limit=limit,
    )


def version_header(raw: bytes | None, name: str) -> Version | None:
    if raw is None:
        return None
    text = raw.strip().removeprefix(b"W/").strip(b'"')
    try:
        return Version.parse(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(
            f"{name} must be a version returned by kvdb (the ETag, '<hlc>.<origin>'), got "
            f"{raw.decode('latin-1')!r}"
        ) from None


def etags(raw: bytes) -> list[bytes]:
    return [part.strip().removeprefix(b"W/") for part in raw.split(b",")]


def parse_batch(body: bytes, *, binary: bool) -> list[Put | Delete]:
    try:
        doc = msgpack.unpackb(body, raw=False) if binary else orjson.loads(body)
    except (ValueError, msgpack.UnpackException) as exc:
        encoding = "msgpack" if binary else "JSON"
        raise BadRequest(f"the batch body is not valid {encoding}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("ops"), list):
        raise BadRequest('the batch body must be an object {"ops": [...]}')
    ops: list[Put | Delete] = []
    for index, item in enumerate(doc["ops"]):
        where = f"ops[{index}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object with 'op' and 'key'")
        key = item.get("key")
        if not isinstance(key, str):
            raise BadRequest(f"{where}.key must be a string")
        if_version = item.get("if_version")
        if if_version is not None:
            if_version = version_header(str(if_version).encode(), f"{where}.if_version")
        kind = item.get("op")
        if kind == "put":
            ops.append(
                Put(
                    key,
                    _batch_value(item, where, binary),
                    item.get("content_type"),
                    if_version,
                    bool(item.get("if_absent", False)),
                )
            )
        elif kind == "delete":
            ops.append(Delete(key, if_version))
        else:
            raise BadRequest(f"{where}.op must be 'put' or 'delete', got {kind!r}")
    return ops


def _batch_value(item: dict[str, Any], where: str, binary: bool) -> bytes:
    value = item.get("value")
    if binary and isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise BadRequest(f"{where}.value must be a string (JSON) or bytes (msgpack)")
    if item.get("encoding") == "base64":
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise BadRequest(f"{where}.value is not valid base64") from exc
    return value.encode()


# -- responses ------------------------------------------------------------------------------------


def item_json(entry: Entry) -> dict[str, Any]:
    item: dict[str, Any] = {
        "key": entry.key,
        "version": str(entry.version),
        **value_fields(entry.value),
    }
    if entry.content_type:
        item["content_type"] = entry.content_type
    return item


def etag(version: Version | None) -> bytes:
    return b'"%s"' % str(version or "").encode()
