"""The ``server:`` section: address, tokens, who may call (hosts and origins), logging and
live-subscription limits."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, field_validator

from .base import Section
from .units import Duration, Size

__all__ = ["ServerSettings", "SubscriptionSettings", "TokenSettings"]


def _usable_token(token: SecretStr) -> SecretStr:
    # The messages never repeat the token: config errors end up in logs.
    value = token.get_secret_value()
    if len(value) < 16:
        raise ValueError(
            "a token must be at least 16 characters; generate one with: openssl rand -hex 24"
        )
    if not (value.isascii() and value.isprintable()) or any(c.isspace() for c in value):
        raise ValueError(
            "a token must be visible ASCII characters, without spaces (one with surrounding "
            "spaces could never be presented: check the quoting); generate one with: "
            "openssl rand -hex 24"
        )
    return token


class TokenSettings(Section):
    token: Annotated[SecretStr, AfterValidator(_usable_token)]
    role: Literal["read", "write", "admin", "replication"]
    name: str | None = None


_HOST = re.compile(r"\*|\.?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?")
_ORIGIN = re.compile(r"\*|https?://[^/?#\s]+")


def _host_name(name: str) -> str:
    """A name the node may be reached by: ``db.example.com``, ``.example.com`` (and every
    name under it), or ``*`` (any); no port."""
    name = name.strip().lower()
    if not _HOST.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a host name: give a name such as 'kvdb.example.com', "
            "'.example.com' for every name under it, or '*' for any (no scheme, no port)"
        )
    return name


def _origin(origin: str) -> str:
    origin = origin.strip().lower().rstrip("/")
    if not _ORIGIN.fullmatch(origin):
        raise ValueError(
            f"{origin!r} is not an origin: give 'scheme://host[:port]' as browsers send it "
            "(such as 'https://app.example.com'), without a path, or '*' for any"
        )
    return origin


class SubscriptionSettings(Section):
    """Limits of each live subscription (WebSocket, SSE, long-poll)."""

    buffer_size: int = Field(10_000, ge=1)
    max_batch: int = Field(1000, ge=1)
    progress_interval: Duration = Field(5000, ge=1)
    stall_timeout: Duration = Field(30_000, ge=1)
    # A WebSocket message carries at most this much (more events go in more messages; one
    # larger event alone): clients' frame limits must allow it (the Python client: 64 MiB).
    max_message_size: Size = Field(1024 * 1024, ge=1024)


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    access_log: bool = False
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    tokens: tuple[TokenSettings, ...] = ()
    allow_unauthenticated_remote: bool = False
    # Names (besides IP addresses, localhost and the bound host) the node answers to.
    allowed_hosts: tuple[Annotated[str, AfterValidator(_host_name)], ...] = ()
    # Web origins whose pages may write and subscribe, with CORS (besides the node's own).
    cors_origins: tuple[Annotated[str, AfterValidator(_origin)], ...] = ()
    subscriptions: SubscriptionSettings = SubscriptionSettings()

    @field_validator("tokens")
    @classmethod
    def _distinct_tokens(cls, tokens: tuple[TokenSettings, ...]) -> tuple[TokenSettings, ...]:
        first: dict[str, int] = {}
        for index, entry in enumerate(tokens):
            earlier = first.setdefault(entry.token.get_secret_value(), index)
            if earlier != index:
                raise ValueError(
                    f"tokens {earlier} and {index} are the same token (with roles "
                    f"{tokens[earlier].role} and {entry.role}): a token has one role; give "
                    "each its own token"
                )
        return tokens
