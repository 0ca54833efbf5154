"""The ``server:`` section: address, tokens, logging and live-subscription limits."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr

from .base import Section
from .units import Duration

__all__ = ["ServerSettings", "SubscriptionSettings", "TokenSettings"]


def _long_enough(token: SecretStr) -> SecretStr:
    if len(token.get_secret_value()) < 16:
        # The message never repeats the token: config errors end up in logs.
        raise ValueError(
            "a token must be at least 16 characters; generate one with: openssl rand -hex 24"
        )
    return token


class TokenSettings(Section):
    token: Annotated[SecretStr, AfterValidator(_long_enough)]
    role: Literal["read", "write", "admin", "replication"]
    name: str | None = None


class SubscriptionSettings(Section):
    """Limits of each live subscription (WebSocket, SSE, long-poll)."""

    buffer_size: int = Field(10_000, ge=1)
    max_batch: int = Field(1000, ge=1)
    progress_interval: Duration = Field(5000, ge=1)
    stall_timeout: Duration = Field(30_000, ge=1)


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    access_log: bool = False
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    tokens: tuple[TokenSettings, ...] = ()
    allow_unauthenticated_remote: bool = False
    subscriptions: SubscriptionSettings = SubscriptionSettings()
