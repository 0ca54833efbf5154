"""Errors of the Python client. Each carries the server's ``status``, ``code`` and ``message``
(and the whole JSON ``body``, whose other members are the ``fields`` of ``kvdb.StructuredError``,
the shape every package's errors share); ``status`` is 0 when no response arrived.

    ClientError
    ├── WatchError           the server refused or ended a subscription (``watch.py``)
    ├── ConnectionFailed     no response (refused, timed out, reset)
    ├── InvalidRequest       400
    ├── Unauthorized         401
    ├── Forbidden            403
    ├── NotFound             404 (not for a missing key: get/delete return None)
    ├── PreconditionFailed   409/412, with current_version
    ├── Compacted            410, with oldest_seq
    ├── PayloadTooLarge      413
    ├── StorageFull          507
    └── ServerError          other 5xx
"""

from __future__ import annotations

from typing import Any

import httpx

from kvdb import StructuredError
from kvdb.versions import Version

__all__ = [
    "ClientError",
    "Compacted",
    "ConnectionFailed",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "ServerError",
    "StorageFull",
    "Unauthorized",
    "raise_for_error",
]


_ENVELOPE = frozenset({"error", "message", "type", "code"})  # HTTP body or WebSocket message


class ClientError(StructuredError):
    """Root of the client's errors. ``status`` is 0 when no response arrived."""

    def __init__(self, status: int, code: str, message: str, body: dict[str, Any] | None = None):
        self.body = body or {}
        fields = {k: v for k, v in self.body.items() if k not in _ENVELOPE}
        super().__init__(message, **fields)
        self.status = status
        self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.code else self.message


class ConnectionFailed(ClientError):
    pass


class InvalidRequest(ClientError):
    pass


class Unauthorized(ClientError):
    pass


class Forbidden(ClientError):
    pass


class NotFound(ClientError):
    pass


class PreconditionFailed(ClientError):
    @property
    def current_version(self) -> Version | None:
        version = self.body.get("current_version")
        return None if version is None else Version.parse(version)


class Compacted(ClientError):
    @property
    def oldest_seq(self) -> int:
        return int(self.body["oldest_seq"])


class PayloadTooLarge(ClientError):
    pass


class StorageFull(ClientError):
    pass


class ServerError(ClientError):
    pass


_ERROR_BY_STATUS: dict[int, type[ClientError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: PreconditionFailed,
    410: Compacted,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    507: StorageFull,
}


def raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        code, message = body["error"], body["message"]
    except (ValueError, KeyError, TypeError):
        body, code, message = {}, "http_error", response.text[:200] or response.reason_phrase
    error = _ERROR_BY_STATUS.get(response.status_code)
    if error is None:
        error = ServerError if response.status_code >= 500 else ClientError
    raise error(response.status_code, code, message, body)
