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
    ├── CursorClosed               the subscription ended (overflow, removal,
    │                              shutdown); reason                       (closed)
    ├── OwnershipConflict          the object belongs to another owner    (ownership_conflict)
    │                              (the API, or a configuration file: see declare.py);
    │                              kind, name, owner
    └── Orphaned                   the object is orphaned: stopped until   (orphaned)
                                   declared again or deleted

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
    "Orphaned",
    "OwnershipConflict",
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

    def __init__(self, name: str, *, differs: bool = False) -> None:
        detail = " with another configuration" if differs else ""
        super().__init__(
            f"a stream named {name!r} already exists{detail}; update it or pick another name",
            name=name,
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


class OwnershipConflict(ChangeStreamError):
    """A change to an object by someone other than its owner: a file declaring a name made
    through the API, or the API changing what a file declares. ``owner`` holds the object
    (None: the API)."""

    code = "ownership_conflict"

    def __init__(self, kind: str, name: str, owner: str | None, message: str) -> None:
        super().__init__(message, kind=kind, name=name, owner=owner)
        self.kind = kind
        self.name = name
        self.owner = owner

    @classmethod
    def declared_elsewhere(
        cls, kind: str, name: str, declarer: str, holder: str | None
    ) -> OwnershipConflict:
        held = "was made through the API" if holder is None else f"is declared by {holder!r}"
        return cls(
            kind,
            name,
            holder,
            f"{kind} {name!r} {held}, so {declarer!r} cannot declare it (a declaration never "
            f"takes over an object it did not make): rename the entry, or delete the existing "
            f"{kind} first",
        )

    @classmethod
    def not_the_api(cls, kind: str, name: str, owner: str) -> OwnershipConflict:
        return cls(
            kind,
            name,
            owner,
            f"{kind} {name!r} is declared by {owner!r}: change it there (it is applied at "
            f"start), or delete it; the API changes only what it made",
        )


class Orphaned(ChangeStreamError):
    """The object was declared by ``owner``, which no longer declares it: it is stopped and
    kept until it is declared again or deleted."""

    code = "orphaned"

    def __init__(self, kind: str, name: str, owner: str) -> None:
        super().__init__(
            f"{kind} {name!r} is orphaned: {owner!r} no longer declares it, so it is stopped. "
            f"Declare it again to resume it, or delete it",
            kind=kind,
            name=name,
            owner=owner,
        )
        self.kind = kind
        self.name = name
        self.owner = owner
