"""FastAPI dependencies shared by the routers: the node, and role checks."""

from __future__ import annotations

from typing import Any

from fastapi import Depends
from starlette.requests import HTTPConnection

from .auth import Role
from .node import Node

__all__ = ["node_of", "require"]


def node_of(connection: HTTPConnection) -> Node:
    node: Node = connection.app.state.node
    return node


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
        node_of(connection).auth.check(authorization_of(connection), role)

    return Depends(check)
