"""FastAPI dependencies shared by the routers: the node, role checks, and JSON bodies."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends
from starlette.requests import HTTPConnection, Request

from ..node import Node
from .auth import Role, TokenAuth
from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

__all__ = ["MAX_JSON_BODY", "JsonBody", "is_json", "json_body", "node_of", "read_body", "require"]

MAX_JSON_BODY = 1024 * 1024  # a stream, handler, route, pipeline or replay definition


def node_of(connection: HTTPConnection) -> Node:
    node: Node = connection.app.state.node
    return node


def auth_of(connection: HTTPConnection) -> TokenAuth:
    auth: TokenAuth = connection.app.state.auth
    return auth


def authorization_of(connection: HTTPConnection) -> bytes | None:
    """The bearer credentials: the Authorization header, or the ``access_token`` query
    parameter where a browser cannot send a header: a WebSocket, or an SSE feed (EventSource).
    Anywhere else a token in the URL is refused, not ignored: URLs end up in logs, histories
    and Referer headers (the access log redacts it, see ``logs.py``)."""
    header = connection.headers.get("authorization")
    if header:
        return header.encode("latin-1")
    token = connection.query_params.get("access_token")
    if token is None:
        return None
    if connection.scope["type"] != "websocket" and connection.query_params.get("feed") != "sse":
        raise BadRequest(
            "access_token in the URL is accepted only on WebSockets and SSE feeds (where a "
            "browser cannot send headers): send 'Authorization: Bearer <token>' instead",
            code="token_in_url",
        )
    return f"Bearer {token}".encode()


def require(role: Role) -> Any:
    """Dependency: the request's bearer token must carry ``role``."""

    def check(connection: HTTPConnection) -> None:
        auth_of(connection).check(authorization_of(connection), role)

    return Depends(check)


def is_json(content_type: str | None) -> bool:
    """``application/json`` or another ``+json`` type, whatever its parameters."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and
                                            media.endswith("+json"))  # fmt: skip


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The request body, refused by ``Content-Length``, or as soon as it passes ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"{what} may be at most {limit} bytes; this one is {declared}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"{what} may be at most {limit} bytes")
    return bytes(body)


async def json_body(request: Request) -> Any:
    """The request's JSON document (None without a body). A body must say it is JSON: a form
    or ``text/plain`` body, which a page of any site may send, is refused (415)."""
    body = await read_body(request, MAX_JSON_BODY, "a JSON body")
    if not body:
        return None
    if not is_json(request.headers.get("content-type")):
        raise UnsupportedMediaType(
            "send the body as JSON with 'Content-Type: application/json'",
            content_type=request.headers.get("content-type"),
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


JsonBody = Annotated[Any, Depends(json_body)]
