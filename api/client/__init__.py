"""Python client for a kvdb node over HTTP: ``Client`` (blocking), ``AsyncClient``, and
``watch()`` for change events. Errors derive from ``ClientError``."""

from __future__ import annotations

from .admin import NoReplication
from .clients import (
    DEFAULT_URL,
    AsyncClient,
    BackupResult,
    BatchResult,
    Client,
    DeleteResult,
    Item,
    ScanPage,
    WriteResult,
)
from .errors import (
    ClientError,
    Compacted,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ServerError,
    StorageFull,
    Unauthorized,
)
from .watch import AsyncWatch, Watch, WatchError

__all__ = [
    "DEFAULT_URL",
    "AsyncClient",
    "AsyncWatch",
    "BackupResult",
    "BatchResult",
    "Client",
    "ClientError",
    "Compacted",
    "ConnectionFailed",
    "DeleteResult",
    "Forbidden",
    "InvalidRequest",
    "Item",
    "NoReplication",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "ScanPage",
    "ServerError",
    "StorageFull",
    "Unauthorized",
    "Watch",
    "WatchError",
    "WriteResult",
]
