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

import changestream
import compute
import eventbus
import kvdb
import sync
from kvdb import StructuredError

from ..errors import ApiError, NodeNotStarted, ShuttingDown

__all__ = [
    "HTTP_STATUS",
    "BadRequest",
    "CrossSiteRequest",
    "Forbidden",
    "HostNotAllowed",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "RequestError",
    "Unauthorized",
    "UnsupportedMediaType",
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


class HostNotAllowed(Forbidden):
    """The ``Host`` is no name of this node: a DNS-rebinding page, or a name to allow."""

    code = "host_not_allowed"


class CrossSiteRequest(Forbidden):
    """A browser page of another origin tried to change state or subscribe."""

    code = "cross_site_request"


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


class UnsupportedMediaType(RequestError):
    code = "unsupported_media_type"


HTTP_STATUS: dict[type[StructuredError], int] = {
    # api
    RequestError: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    MethodNotAllowed: 405,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    NodeNotStarted: 503,
    ShuttingDown: 503,
    # kvdb
    kvdb.ValidationError: 400,
    kvdb.PreconditionFailed: 412,
    kvdb.Compacted: 410,
    kvdb.SequenceGap: 409,
    kvdb.EpochMismatch: 409,
    kvdb.ClockSkew: 422,
    kvdb.ValueTooLarge: 413,
    kvdb.BatchTooLarge: 413,
    kvdb.StorageFull: 507,
    kvdb.StoreClosed: 503,
    kvdb.DataDirLocked: 500,
    # changestream
    changestream.InvalidStreamConfig: 400,
    changestream.InvalidAck: 400,
    changestream.UnknownStream: 404,
    changestream.StreamExists: 409,
    changestream.ConsumerBusy: 409,
    changestream.CursorClosed: 410,
    changestream.OwnershipConflict: 409,
    changestream.Orphaned: 409,
    # eventbus
    eventbus.InvalidBusConfig: 400,
    eventbus.UnknownHandler: 404,
    eventbus.UnknownRoute: 404,
    eventbus.UnknownDeadLetter: 404,
    eventbus.UnknownAggregation: 404,
    eventbus.HandlerExists: 409,
    eventbus.RouteExists: 409,
    eventbus.HandlerInUse: 409,
    eventbus.DeliveryError: 502,
    eventbus.BusNotStarted: 503,
    # compute
    compute.SqlError: 400,
    compute.PipelineDefinitionError: 400,
    compute.InvalidRecord: 400,
    compute.UnknownPipeline: 404,
    compute.UnknownSqlStream: 404,
    compute.PipelineExists: 409,
    compute.SqlStreamExists: 409,
    compute.StreamInUse: 409,
    compute.IncompatibleState: 409,
    compute.StepError: 422,
    # sync
    sync.InvalidSyncConfig: 400,
    sync.InvalidSyncMessage: 400,
    sync.UnknownSyncProcessor: 404,
    sync.SyncProcessorExists: 409,
    sync.TargetError: 502,
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
