"""Bearer tokens with roles. Without configured tokens every request is allowed (the server
refuses to bind a non-loopback address in that case unless told to; see ``run.py``)."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable

from .errors import Forbidden, Unauthorized

__all__ = ["Role", "TokenAuth"]


class Role(enum.IntEnum):
    """``read`` < ``write`` < ``admin``: each includes the ones below it. ``replication`` stands
    apart: it is what another node's sync processor presents, and it opens the ``/sync``
    endpoints only, which no role but it and ``admin`` opens."""

    READ = 1
    WRITE = 2
    ADMIN = 3
    REPLICATION = 4

    def grants(self, needed: Role) -> bool:
        if needed is Role.REPLICATION:
            return self in (Role.REPLICATION, Role.ADMIN)
        return self is not Role.REPLICATION and self >= needed


class TokenAuth:
    def __init__(self, tokens: Iterable[tuple[str, Role]] = ()) -> None:
        # Keyed by digest so that looking a token up does not compare secrets byte by byte.
        self._roles = {_digest(token.encode()): role for token, role in tokens}

    @property
    def enabled(self) -> bool:
        return bool(self._roles)

    def check(self, authorization: bytes | None, needed: Role) -> None:
        """Raise unless the ``Authorization`` header carries a token with ``needed``."""
        if not self._roles:
            return
        if not authorization:
            raise Unauthorized(
                "this node requires a bearer token: send 'Authorization: Bearer <token>'"
            )
        scheme, _, token = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        role = self._roles.get(_digest(token.strip()))
        if role is None:
            raise Unauthorized("unknown bearer token")
        if not role.grants(needed):
            raise Forbidden(
                f"this token has the {role.name.lower()} role; this request needs "
                f"{needed.name.lower()}"
            )


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()
