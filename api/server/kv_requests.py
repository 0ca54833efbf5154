"""Parsing requests to the ``/kv`` endpoints and shaping their answers; no I/O here."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import unquote_to_bytes

import msgpack
import orjson

from kvdb import ANY_VERSION, NO_VERSION, Delete, Entry, Limits, Put, Version
from kvdb.config import SETTINGS
from kvdb.events import value_fields
from kvdb.validation import is_media_type, validate_content_type

from .dependencies import is_json
from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

__all__ = [
    "OCTETS",
    "VALUE_HEADERS",
    "batch_body_limit",
    "batch_encoding",
    "batch_if_version",
    "content_type_header",
    "etag",
    "etags",
    "if_match",
    "item_json",
    "key_from_raw_path",
    "parse_batch",
    "served_content_type",
    "too_large",
]

OCTETS = b"application/octet-stream"
# On every stored value served: browsers must not guess another type than the stored one, and
# a value served as text/html or image/svg+xml runs no script and reaches nothing on the API's
# origin (a sandbox makes its origin opaque), whoever stored it.
VALUE_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'none'; sandbox"),
]


MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
BATCH_OP_FRAMING = 512  # bytes of JSON or msgpack around one op's key and value, at most


def batch_encoding(content_type: bytes | None) -> bool:
    """True for a msgpack batch, False for JSON; any other body is refused (415): a form or
    text body, which a page of any site may send, cannot pass for a batch."""
    text = (content_type or b"").decode("latin-1")
    if text.split(";", 1)[0].strip().lower() in MSGPACK_TYPES:
        return True
    if is_json(text):
        return False
    raise UnsupportedMediaType(
        "a batch is JSON ('Content-Type: application/json') or msgpack "
        f"('Content-Type: application/msgpack'), not {text[:60] or 'a body without a type'!r}",
        content_type=text[:100] or None,
    )


def batch_body_limit(limits: Limits) -> int:
    """The largest batch body read: the batch limit plus the framing of its ops. Binary
    values travel best as msgpack (JSON's base64 adds a third)."""
    return limits.max_batch_bytes + BATCH_OP_FRAMING * limits.max_batch_ops


def content_type_header(raw: bytes | None) -> str | None:
    """The media type a PUT stores, from its ``Content-Type`` header (None: none given)."""
    if not raw:
        return None
    return validate_content_type(raw.decode("latin-1").strip(" \t"), "the Content-Type header")


def served_content_type(content_type: str | None) -> bytes:
    """The ``Content-Type`` a stored value is served with. A type stored before types were
    checked (or by an older peer) that is not a valid media type is served as octets: it
    must never reach the response head as it is."""
    if content_type and is_media_type(content_type):
        return content_type.encode()
    return OCTETS


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


def too_large(what: str, size: int | None, limit: int, limit_name: str) -> PayloadTooLarge:
    """A body over the limit that ``limit_name`` (a ``kvdb.config.Limits`` field) sets."""
    setting = SETTINGS[limit_name]
    said = f"is {size} bytes" if size is not None else f"exceeds {limit} bytes"
    return PayloadTooLarge(
        f"the {what} {said}; the limit is {limit} bytes ({setting}): send less or raise the limit",
        size=size,
        limit=limit,
        setting=setting,
    )


_ENTITY_TAGS = re.compile(rb'[ \t]*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*(?:,|$)')


def if_match(raw: bytes | None) -> Version | None:
    """The condition of an ``If-Match`` header (RFC 9110 13.1.1) as an ``if_version``: ``*``
    holds for any current value (``ANY_VERSION``); a list of entity tags for the version one
    of them names. A well-formed tag that is no version kvdb could hold (weak, not
    '<hlc>.<origin>', out of range) never holds (``NO_VERSION``): 412, as for a version that
    is no longer current. Only a malformed header is a 400 (and a list naming several
    versions: a key has one); a bare version without quotes is accepted."""
    if raw is None:
        return None
    text = raw.strip()
    if text == b"*":
        return ANY_VERSION
    tags = _entity_tags(text)
    if tags is None:
        try:
            return Version.parse(text.decode("ascii"))  # unquoted: lenient
        except (UnicodeDecodeError, ValueError):
            raise BadRequest(
                "If-Match must be '*' or entity tags: the ETag of a read, '\"<hlc>.<origin>\"'"
                f", got {raw.decode('latin-1')[:80]!r}"
            ) from None
    versions = {version for weak, tag in tags if not weak and (version := _version_or_none(tag))}
    if len(versions) > 1:
        raise BadRequest("If-Match may name one version: a key has one current version")
    return versions.pop() if versions else NO_VERSION


def batch_if_version(value: object, where: str) -> Version | None:
    """An op's ``if_version``: a version string ('<hlc>.<origin>'); one out of range is no
    current version (never holds)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{where} must be a version string '<hlc>.<origin>', got {value!r:.40}")
    version = _version_or_none(value.encode("utf-8", "replace"))
    if version is None:
        head, dot, origin = value.partition(".")
        if not (dot and head.isascii() and head.isdigit() and origin):
            raise BadRequest(f"{where} must be a version '<hlc>.<origin>', got {value!r:.60}")
        return NO_VERSION  # well-formed, but no version a value could have
    return version


def _entity_tags(text: bytes) -> list[tuple[bool, bytes]] | None:
    tags: list[tuple[bool, bytes]] = []
    position = 0
    while position < len(text):
        match = _ENTITY_TAGS.match(text, position)
        if match is None or match.end() == position:
            return None
        tags.append((match.group(1) is not None, match.group(2)))
        position = match.end()
    return tags or None


def _version_or_none(tag: bytes) -> Version | None:
    try:
        return Version.parse(tag.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


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
        if_version = batch_if_version(item.get("if_version"), f"{where}.if_version")
        kind = item.get("op")
        if kind == "put":
            ops.append(
                Put(
                    key,
                    _batch_value(item, where, binary),
                    validate_content_type(item.get("content_type"), f"{where}.content_type"),
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
