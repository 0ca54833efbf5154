"""HTTP errors, and the one place where kvdb errors become HTTP statuses.

Every error response is JSON ``{"error": "<code>", "message": "<what and how to fix>"}``, plus
structured fields where a client needs them (``oldest_seq``, ``current_version``, ``limit``).

    ApiError                      raised by api/ itself
    ├── BadRequest          400   malformed request (query, header, body)
    ├── Unauthorized        401   missing or unknown bearer token
    ├── Forbidden           403   token lacks the role
    ├── NotFound            404   no such key or resource
    ├── MethodNotAllowed    405
    └── PayloadTooLarge     413   body over the configured limit

kvdb, changestream and eventbus errors keep their own codes; ``error_response_parts`` gives each its
status (400 bad input, 404 unknown stream, 409 conflicts, 410 compacted, 412, 413, 507...).
Stream-computing errors (``compute``) add their fields: SQL errors carry ``line``
and ``column`` (and ``construct`` when unsupported), step errors ``pipeline`` and ``step``.
"""

from __future__ import annotations

from typing import Any

import orjson

from changestream import (
    ChangeStreamError,
    ConsumerBusy,
    CursorClosed,
    InvalidAck,
    InvalidStreamConfig,
    Orphaned,
    OwnershipConflict,
    StreamExists,
    UnknownStream,
)
from compute import (
    ComputeError,
    IncompatibleState,
    InvalidRecord,
    PipelineDefinitionError,
    PipelineExists,
    SqlError,
    SqlStreamExists,
    StepError,
    StreamInUse,
    UnknownPipeline,
    UnknownSqlStream,
)
from eventbus import (
    DeliveryError,
    EventBusError,
    HandlerExists,
    HandlerInUse,
    InvalidBusConfig,
    RouteExists,
    UnknownAggregation,
    UnknownDeadLetter,
    UnknownHandler,
    UnknownRoute,
)
from kvdb import (
    BatchTooLarge,
    ClockSkew,
    Compacted,
    DataDirLocked,
    EpochMismatch,
    KvdbError,
    PreconditionFailed,
    ReplicationError,
    SequenceGap,
    StorageFull,
    StoreClosed,
    ValidationError,
    ValueTooLarge,
)
from sync import (
    InvalidSyncConfig,
    InvalidSyncMessage,
    SyncError,
    SyncProcessorExists,
    TargetError,
    UnknownSyncProcessor,
)

__all__ = [
    "ApiError",
    "BadRequest",
    "Forbidden",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "Unauthorized",
    "error_body",
    "error_document",
    "error_response_parts",
]


class ApiError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


class BadRequest(ApiError):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str = "bad_request", **fields: Any) -> None:
        super().__init__(message, **fields)
        self.code = code


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message)
        self.allow = allow


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


_STATUS_BY_ERROR: list[tuple[type[KvdbError], int]] = [
    (SequenceGap, 409),
    (EpochMismatch, 409),
    (ClockSkew, 422),
    (ValueTooLarge, 413),
    (BatchTooLarge, 413),
    (ValidationError, 400),
    (PreconditionFailed, 412),
    (Compacted, 410),
    (StorageFull, 507),
    (StoreClosed, 503),
    (DataDirLocked, 500),
]


def status_of(exc: KvdbError) -> int:
    for error_type, status in _STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            return status
    return 500


_STATUS_BY_STREAM_ERROR: list[tuple[type[ChangeStreamError], int]] = [
    (InvalidStreamConfig, 400),
    (InvalidAck, 400),
    (UnknownStream, 404),
    (StreamExists, 409),
    (ConsumerBusy, 409),
    (OwnershipConflict, 409),
    (Orphaned, 409),
    (CursorClosed, 410),
]

_STATUS_BY_BUS_ERROR: list[tuple[type[EventBusError], int]] = [
    (InvalidBusConfig, 400),
    (UnknownHandler, 404),
    (UnknownRoute, 404),
    (UnknownDeadLetter, 404),
    (UnknownAggregation, 404),
    (HandlerExists, 409),
    (RouteExists, 409),
    (HandlerInUse, 409),
    (DeliveryError, 502),
]


_STATUS_BY_COMPUTE_ERROR: list[tuple[type[ComputeError], int]] = [
    (SqlError, 400),
    (PipelineDefinitionError, 400),
    (InvalidRecord, 400),
    (UnknownPipeline, 404),
    (UnknownSqlStream, 404),
    (PipelineExists, 409),
    (SqlStreamExists, 409),
    (StreamInUse, 409),
    (IncompatibleState, 409),
    (StepError, 422),
]


_STATUS_BY_SYNC_ERROR: list[tuple[type[SyncError], int]] = [
    (InvalidSyncConfig, 400),
    (InvalidSyncMessage, 400),
    (UnknownSyncProcessor, 404),
    (SyncProcessorExists, 409),
    (TargetError, 502),
]


def error_body(code: str, message: str, **fields: Any) -> bytes:
    return orjson.dumps({"error": code, "message": message, **fields})


def error_document(exc: Exception) -> tuple[int, dict[str, Any], dict[str, str]]:
    """``(status, {"error", "message", ...fields}, extra headers)`` for any error raised while
    serving a request: the one place that decides how errors look over HTTP and WebSocket."""
    if isinstance(exc, ApiError):
        headers = {"allow": exc.allow} if isinstance(exc, MethodNotAllowed) else {}
        if isinstance(exc, Unauthorized):
            headers["www-authenticate"] = 'Bearer realm="kvdb"'
        return exc.status, {"error": exc.code, "message": exc.message, **exc.fields}, headers
    if isinstance(exc, KvdbError):
        fields: dict[str, Any] = {}
        if isinstance(exc, Compacted):
            fields = {"oldest_seq": exc.oldest_seq, "since": exc.since}
        elif isinstance(exc, PreconditionFailed):
            version = exc.current_version
            fields = {"key": exc.key, "current_version": None if version is None else str(version)}
        elif isinstance(exc, ValueTooLarge | BatchTooLarge):
            fields = {"size": exc.size, "limit": exc.limit}
        elif isinstance(exc, ReplicationError):
            fields = exc.fields
        return status_of(exc), {"error": exc.code, "message": exc.message, **fields}, {}
    if isinstance(exc, ChangeStreamError):
        status = next((st for kind, st in _STATUS_BY_STREAM_ERROR if isinstance(exc, kind)), 500)
        return status, {"error": exc.code, "message": exc.message}, {}
    if isinstance(exc, EventBusError):
        status = next((st for kind, st in _STATUS_BY_BUS_ERROR if isinstance(exc, kind)), 500)
        extra = {"routes": exc.routes} if isinstance(exc, HandlerInUse) else {}
        return status, {"error": exc.code, "message": exc.message, **extra}, {}
    if isinstance(exc, SyncError):
        status = next((st for kind, st in _STATUS_BY_SYNC_ERROR if isinstance(exc, kind)), 500)
        return status, {"error": exc.code, "message": exc.message, **exc.fields}, {}
    if isinstance(exc, ComputeError):
        status = next((st for kind, st in _STATUS_BY_COMPUTE_ERROR if isinstance(exc, kind)), 500)
        fields = {k: v for k, v in exc.fields.items() if v is not None}
        return status, {"error": exc.code, "message": exc.message, **fields}, {}
    return 500, {"error": "internal_error", "message": "internal server error; see the log"}, {}


def error_response_parts(exc: Exception) -> tuple[int, bytes, dict[str, str]]:
    """``(status, JSON body, extra headers)`` for an HTTP error response."""
    status, document, headers = error_document(exc)
    return status, orjson.dumps(document), headers
