"""HTTP errors, and the one place where errors become HTTP statuses.

Every error response is JSON ``{"error": "<code>", "message": "<what and how to fix>"}`` plus
the error's structured ``fields`` (``oldest_seq``, ``current_version``, ``limit``, ``line``
and ``column``, ``routes``...). Every package's errors have that shape (``kvdb.StructuredError``),
so one table, ``HTTP_STATUS``, gives the status: an error takes the status of the nearest class
in its ``__mro__`` that the table names (as starlette looks up exception handlers), so a new
subclass inherits its parent's status and an unlisted error is a 500 that still says what it is.
Anything else is a 500 ``internal_error`` whose details stay in the log. The request errors of
``api`` itself (the ``RequestError`` branch of the tree in ``api/errors.py``) are defined here;
``headers`` go on the response (``allow``, ``www-authenticate``).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.exceptions import HTTPException as StarletteHTTPException

from changestream import (
    ConsumerBusy,
    CursorClosed,
    InvalidAck,
    InvalidStreamConfig,
    StreamExists,
    UnknownStream,
)
from compute import (
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
    BusNotStarted,
    DeliveryError,
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
    Compacted,
    DataDirLocked,
    PreconditionFailed,
    StorageFull,
    StoreClosed,
    StructuredError,
    ValidationError,
    ValueTooLarge,
)

from ..errors import ApiError, NodeNotStarted

__all__ = [
    "HTTP_STATUS",
    "BadRequest",
    "Forbidden",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "RequestError",
    "Unauthorized",
    "error_body",
    "error_document",
    "error_response_parts",
    "http_status",
]


class RequestError(ApiError):
    """A request that cannot be served; ``headers`` go on the error response."""

    code = "bad_request"
    headers: dict[str, str] = {}


class BadRequest(RequestError):
    code = "bad_request"

    def __init__(self, message: str, *, code: str = "bad_request", **fields: Any) -> None:
        super().__init__(message, **fields)
        self.code = code


class Unauthorized(RequestError):
    code = "unauthorized"
    headers = {"www-authenticate": 'Bearer realm="kvdb"'}


class Forbidden(RequestError):
    code = "forbidden"


class NotFound(RequestError):
    code = "not_found"


class MethodNotAllowed(RequestError):
    code = "method_not_allowed"

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message)
        self.allow = allow
        self.headers = {"allow": allow}


class PayloadTooLarge(RequestError):
    code = "payload_too_large"


HTTP_STATUS: dict[type[StructuredError], int] = {
    # api
    RequestError: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    MethodNotAllowed: 405,
    PayloadTooLarge: 413,
    NodeNotStarted: 503,
    # kvdb
    ValidationError: 400,
    PreconditionFailed: 412,
    Compacted: 410,
    ValueTooLarge: 413,
    BatchTooLarge: 413,
    StorageFull: 507,
    StoreClosed: 503,
    DataDirLocked: 500,
    # changestream
    InvalidStreamConfig: 400,
    InvalidAck: 400,
    UnknownStream: 404,
    StreamExists: 409,
    ConsumerBusy: 409,
    CursorClosed: 410,
    # eventbus
    InvalidBusConfig: 400,
    UnknownHandler: 404,
    UnknownRoute: 404,
    UnknownDeadLetter: 404,
    UnknownAggregation: 404,
    HandlerExists: 409,
    RouteExists: 409,
    HandlerInUse: 409,
    DeliveryError: 502,
    BusNotStarted: 503,
    # compute
    SqlError: 400,
    PipelineDefinitionError: 400,
    InvalidRecord: 400,
    UnknownPipeline: 404,
    UnknownSqlStream: 404,
    PipelineExists: 409,
    SqlStreamExists: 409,
    StreamInUse: 409,
    IncompatibleState: 409,
    StepError: 422,
}

_INTERNAL = {"error": "internal_error", "message": "internal server error; see the log"}


def http_status(exc: StructuredError) -> int:
    """The status of the nearest class of ``exc`` in ``HTTP_STATUS``; 500 if none."""
    for kind in type(exc).__mro__:
        status = HTTP_STATUS.get(kind)
        if status is not None:
            return status
    return 500


def error_body(code: str, message: str, **fields: Any) -> bytes:
    return orjson.dumps({"error": code, "message": message, **fields})


def error_document(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """``(status, {"error", "message", ...fields}, extra headers)`` for any error raised while
    serving a request: the one place that decides how errors look over HTTP and WebSocket."""
    if isinstance(exc, StructuredError):
        headers = exc.headers if isinstance(exc, RequestError) else {}
        document = {"error": exc.code, "message": exc.message, **exc.fields}
        return http_status(exc), document, dict(headers)
    if isinstance(exc, StarletteHTTPException):  # the framework's, with a status of its own
        document = {"error": "http_error", "message": str(exc.detail)}
        return exc.status_code, document, dict(exc.headers or {})
    return 500, dict(_INTERNAL), {}


def error_response_parts(exc: BaseException) -> tuple[int, bytes, dict[str, str]]:
    """``(status, JSON body, extra headers)`` for an HTTP error response."""
    status, document, headers = error_document(exc)
    return status, orjson.dumps(document), headers
