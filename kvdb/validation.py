"""Input checks made before anything reaches the writer, so a write that joins a commit group
cannot fail it for the others. Each error names the limit by its setting in the YAML file."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .config import SETTINGS, Limits
from .errors import (
    BatchTooLarge,
    InvalidContentType,
    InvalidKey,
    ReservedKey,
    ValidationError,
    ValueTooLarge,
)
from .ops import Delete, Put

__all__ = [
    "MAX_CONTENT_TYPE_BYTES",
    "RESERVED_PREFIX",
    "is_media_type",
    "validate_batch",
    "validate_content_type",
    "validate_key",
    "validate_value",
]

RESERVED_PREFIX = "_"
MAX_CONTENT_TYPE_BYTES = 255  # stored with a one-byte length (codec.py)
_BYTES_TYPES = (bytes, bytearray, memoryview)  # a tuple: isinstance with a union is 6x slower

# RFC 9110 8.3.1: type "/" subtype *( OWS ";" OWS [ parameter ] ), parameter values a token or
# a quoted-string; ASCII only (obs-text is not accepted), so no CR, LF or other control byte.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[\t !#-\[\]-~]|\\[\t -~])*"'
_MEDIA_TYPE = re.compile(
    rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*(?:{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))?)*", re.ASCII
)
_KNOWN_TYPES: dict[str, None] = {}  # media types already checked: the common ones repeat
_KNOWN_TYPES_MAX = 1024


def is_media_type(text: str) -> bool:
    """True if ``text`` is a media type kvdb stores and serves: RFC 9110 syntax, ASCII, at
    most ``MAX_CONTENT_TYPE_BYTES`` bytes."""
    if text in _KNOWN_TYPES:
        return True
    if len(text) > MAX_CONTENT_TYPE_BYTES or not text.isascii():
        return False
    if _MEDIA_TYPE.fullmatch(text) is None:
        return False
    if len(_KNOWN_TYPES) >= _KNOWN_TYPES_MAX:
        _KNOWN_TYPES.clear()
    _KNOWN_TYPES[text] = None
    return True


def validate_content_type(content_type: object, where: str = "content type") -> str | None:
    """Return the content type to store (None for none), or raise ``InvalidContentType``.
    ``where`` names the field in the message (``ops[3].content_type``)."""
    if content_type is None or content_type == "":
        return None
    if not isinstance(content_type, str):
        raise InvalidContentType(
            f"{where} must be a string (a media type such as 'application/json'), got "
            f"{type(content_type).__name__}"
        )
    if not is_media_type(content_type):
        shown = content_type[:60].encode("ascii", "backslashreplace").decode()
        raise InvalidContentType(
            f"{where} {shown!r} is not a media type: it must be ASCII 'type/subtype' with "
            f"optional '; name=value' parameters (RFC 9110), at most {MAX_CONTENT_TYPE_BYTES} "
            "bytes, e.g. 'text/plain; charset=utf-8'"
        )
    return content_type


def validate_key(key: str, limits: Limits, *, allow_reserved: bool = False) -> bytes:
    """Return the key's UTF-8 bytes, or raise if it cannot be stored."""
    if not isinstance(key, str):
        raise InvalidKey(f"key must be a string, got {type(key).__name__}")
    try:
        raw = key.encode()
    except UnicodeEncodeError as exc:
        raise InvalidKey(f"key is not valid UTF-8 ({exc.reason}); use a UTF-8 key") from exc
    if not raw:
        raise InvalidKey("key is empty; keys are 1 to 511 bytes of UTF-8")
    if len(raw) > limits.max_key_bytes:
        raise InvalidKey(
            f"key is {len(raw)} bytes; the limit is {limits.max_key_bytes} bytes of UTF-8 "
            "(LMDB's maximum key size): shorten the key"
        )
    if not allow_reserved and key.startswith(RESERVED_PREFIX):
        raise ReservedKey(
            f"key {key[:40]!r} starts with {RESERVED_PREFIX!r}, which is reserved for the "
            "system; choose a key that does not"
        )
    return raw


def validate_value(value: bytes, limits: Limits, key: str) -> None:
    if not isinstance(value, _BYTES_TYPES):
        raise ValidationError(f"value of {key[:40]!r} must be bytes, got {type(value).__name__}")
    if len(value) > limits.max_value_bytes:
        raise ValueTooLarge(
            f"value of {key[:40]!r} is {len(value)} bytes; the limit is "
            f"{limits.max_value_bytes} bytes ({SETTINGS['max_value_bytes']}): store large blobs "
            "elsewhere or raise the limit",
            size=len(value),
            limit=limits.max_value_bytes,
            setting=SETTINGS["max_value_bytes"],
        )


def validate_batch(ops: Sequence[Put | Delete], limits: Limits) -> tuple[list[bytes], int]:
    """Check every op of a batch; return the encoded keys, in order, and the bytes of its
    keys and values."""
    if len(ops) > limits.max_batch_ops:
        raise BatchTooLarge(
            f"batch has {len(ops)} ops; the limit is {limits.max_batch_ops} "
            f"({SETTINGS['max_batch_ops']}): split it into smaller batches",
            size=len(ops),
            limit=limits.max_batch_ops,
            setting=SETTINGS["max_batch_ops"],
        )
    keys: list[bytes] = []
    total = 0
    for op in ops:
        keys.append(validate_key(op.key, limits))
        if isinstance(op, Put):
            validate_value(op.value, limits, op.key)
            if op.content_type is not None:
                validate_content_type(op.content_type, f"content type of {op.key[:40]!r}")
            total += len(op.value)
        elif not isinstance(op, Delete):
            raise InvalidKey(f"batch op must be Put or Delete, got {type(op).__name__}")
        total += len(keys[-1])
    if total > limits.max_batch_bytes:
        raise BatchTooLarge(
            f"batch carries {total} bytes of keys and values; the limit is "
            f"{limits.max_batch_bytes} ({SETTINGS['max_batch_bytes']}): split it into smaller "
            "batches",
            size=total,
            limit=limits.max_batch_bytes,
            setting=SETTINGS["max_batch_bytes"],
        )
    return keys, total
