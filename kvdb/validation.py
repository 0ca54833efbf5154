"""Input checks made before anything reaches the writer. Each error names the limit."""

from __future__ import annotations

from collections.abc import Sequence

from .config import Limits
from .errors import BatchTooLarge, InvalidKey, ReservedKey, ValidationError, ValueTooLarge
from .ops import Delete, Put

__all__ = ["RESERVED_PREFIX", "validate_batch", "validate_key", "validate_value"]

RESERVED_PREFIX = "_"
_BYTES_TYPES = (bytes, bytearray, memoryview)  # a tuple: isinstance with a union is 6x slower


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
            "(max_key_bytes): shorten the key"
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
            f"{limits.max_value_bytes} bytes (max_value_bytes): store large blobs elsewhere "
            "or raise the limit",
            size=len(value),
            limit=limits.max_value_bytes,
        )


def validate_batch(ops: Sequence[Put | Delete], limits: Limits) -> list[bytes]:
    """Check every op of a batch and return the encoded keys, in order."""
    if len(ops) > limits.max_batch_ops:
        raise BatchTooLarge(
            f"batch has {len(ops)} ops; the limit is {limits.max_batch_ops} (max_batch_ops): "
            "split it into smaller batches",
            size=len(ops),
            limit=limits.max_batch_ops,
        )
    keys: list[bytes] = []
    total = 0
    for op in ops:
        keys.append(validate_key(op.key, limits))
        if isinstance(op, Put):
            validate_value(op.value, limits, op.key)
            total += len(op.value)
        elif not isinstance(op, Delete):
            raise InvalidKey(f"batch op must be Put or Delete, got {type(op).__name__}")
        total += len(keys[-1])
    if total > limits.max_batch_bytes:
        raise BatchTooLarge(
            f"batch carries {total} bytes of keys and values; the limit is "
            f"{limits.max_batch_bytes} (max_batch_bytes): split it into smaller batches",
            size=total,
            limit=limits.max_batch_bytes,
        )
    return keys
