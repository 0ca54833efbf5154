"""FastAPI dependencies shared by the routers: the node, and role checks."""

from __future__ import annotations

from typing import Any

from fastapi import Depends
from starlette.requests import HTTPConnection

from ..node import Node
from .auth import Role, TokenAuth

__all__ = ["node_of", "require"]


def node_of(connection: HTTPConnection) -> Node:
    node: Node = connection.app.state.node
    return node


def auth_of(connection: HTTPConnection) -> TokenAuth:
    auth: TokenAuth = connection.app.state.auth
    return auth


def authorization_of(connection: HTTPConnection) -> bytes | None:
    """The bearer credentials: the Authorization header, or (for browsers' WebSockets, which
    cannot set headers) the ``access_token`` query parameter."""
    header = connection.headers.get("authorization")
    if header:
        return header.encode("latin-1")
    token = connection.query_params.get("access_token")
    return f"Bearer {token}".encode() if token else None


def require(role: Role) -> Any:
    """Dependency: the request's bearer token must carry ``role``."""

    def check(connection: HTTPConnection) -> None:
        auth_of(connection).check(authorization_of(connection), role)

    return Depends(check)
