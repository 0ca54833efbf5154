"""Errors of the change-stream layer. The root derives from ``kvdb.StructuredError``, the shape
every package's errors share (``code``, ``message``, ``fields``; see ``kvdb/errors.py``).

    ChangeStreamError                                                 (change_stream_error)
    ├── InvalidStreamConfig        a StreamConfig that cannot work        (invalid_stream_config)
    │   └── InvalidPattern         a key pattern re2 cannot compile;
    │                              pattern, reason                         (invalid_pattern)
    ├── UnknownStream              no stream by that name; name            (unknown_stream)
    ├── StreamExists               create() of a name already taken; name  (stream_exists)
    ├── ConsumerBusy               that consumer of the stream is attached (consumer_busy)
    ├── InvalidAck                 ack of a seq the consumer was not given (invalid_ack)
    └── CursorClosed               the subscription ended (overflow, removal,
                                   shutdown); reason                       (closed)

A consumer whose events were compacted away gets ``kvdb.Compacted`` (code ``compacted``, with
``oldest_seq``), the same error a direct read of the log raises.
"""

from __future__ import annotations

from kvdb import StructuredError

__all__ = [
    "ChangeStreamError",
    "ConsumerBusy",
    "CursorClosed",
    "InvalidAck",
    "InvalidPattern",
    "InvalidStreamConfig",
    "StreamExists",
    "UnknownStream",
]


class ChangeStreamError(StructuredError):
    """Root of the change-stream layer's errors."""

    code = "change_stream_error"


class InvalidStreamConfig(ChangeStreamError):
    code = "invalid_stream_config"


class InvalidPattern(InvalidStreamConfig):
    code = "invalid_pattern"

    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(
            f"key pattern {pattern!r} is not a valid RE2 regular expression: {reason}. Patterns "
            "use RE2 syntax (no backreferences or lookaround) and must match the whole key",
            pattern=pattern,
            reason=reason,
        )
        self.pattern = pattern
        self.reason = reason


class UnknownStream(ChangeStreamError):
    code = "unknown_stream"

    def __init__(self, name: str) -> None:
        super().__init__(f"no stream named {name!r}; list them with GET /streams", name=name)
        self.name = name


class StreamExists(ChangeStreamError):
    code = "stream_exists"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"a stream named {name!r} already exists; update it or pick another name", name=name
        )
        self.name = name


class ConsumerBusy(ChangeStreamError):
    code = "consumer_busy"


class InvalidAck(ChangeStreamError):
    code = "invalid_ack"


class CursorClosed(ChangeStreamError):
    code = "closed"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason
