"""Errors of the ``api`` package. The root derives from ``kvdb.StructuredError``, the shape
every package's errors share (``code``, ``message``, ``fields``; see ``kvdb/errors.py``).

    ApiError                      root of the edge's errors                  (api_error)
    ├── ConfigError               settings that cannot be used: file, line,
    │                             field path and what was expected           (invalid_config)
    ├── NodeNotStarted            a Node's parts used before start() or
    │                             after stop()                               (not_started)
    ├── ShuttingDown              the server is stopping: a feed ends        (shutting_down)
    └── RequestError              an HTTP request that cannot be served
        │                         (``server/errors.py``, with the HTTP table)
        ├── BadRequest            malformed request (query, header, body)    (bad_request...)
        ├── Unauthorized          missing or unknown bearer token            (unauthorized)
        ├── Forbidden             the token lacks the role                   (forbidden)
        │   ├── HostNotAllowed    a Host that is no name of this node        (host_not_allowed)
        │   └── CrossSiteRequest  another origin's page changing state       (cross_site_request)
        ├── NotFound              no such key or route                       (not_found)
        ├── MethodNotAllowed      with the methods the path allows           (method_not_allowed)
        ├── PayloadTooLarge       a body over the configured limit           (payload_too_large)
        └── UnsupportedMediaType  a body of a type not accepted here    (unsupported_media_type)

The client SDK's errors describe another node's answer, not this process: they have their own
root, ``client.ClientError`` (``client/errors.py``), of the same shape.
"""

from __future__ import annotations

from kvdb import StructuredError

__all__ = ["ApiError", "ConfigError", "NodeNotStarted", "ShuttingDown"]


class ApiError(StructuredError):
    """Root of the errors ``api`` itself raises."""

    code = "api_error"


class ConfigError(ApiError):
    """Settings that cannot be used. The message names the file, field path and expectation."""

    code = "invalid_config"


class NodeNotStarted(ApiError):
    code = "not_started"

    def __init__(self) -> None:
        super().__init__("the node is not started: use 'async with Node(...)' or start()")


class ShuttingDown(ApiError):
    """The server is shutting down: a feed ends; resume elsewhere, or here once it is back."""

    code = "shutting_down"
