"""What configures each kind of external target (the kind-specific part of a ``TargetConfig``).

Small frozen value objects, checked when made, so a bad DSN or an unknown retention fails at
load time rather than at the first batch. None of them imports a driver: a node that uses no
external target never imports nats-py, psycopg or redis-py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import InvalidSyncConfig

__all__ = [
    "EXTERNAL_KINDS",
    "JetStreamOptions",
    "PostgresOptions",
    "RedisOptions",
    "TargetOptions",
    "options_of",
    "redact_url",
]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")
_SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_\-]+$")


def redact_url(url: str) -> str:
    """``url`` without its password, for status pages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def _check_url(url: object, schemes: tuple[str, ...], example: str, what: str) -> str:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in schemes or not (parts.hostname or parts.path):
        raise InvalidSyncConfig(
            f"{what} {url!r} must be a URL with scheme {' or '.join(schemes)}, such as {example}"
        )
    return url  # type: ignore[return-value]


def _positive(value: object, name: str, *, zero: bool = False) -> None:
    low = 0 if zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidSyncConfig(f"{name} must be an integer >= {low}, got {value!r}")


def _choice(value: object, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidSyncConfig(f"{name} must be one of {', '.join(choices)}, got {value!r}")


@dataclass(frozen=True)
class JetStreamOptions:
    """A NATS JetStream stream that receives this node's change events.

    ``stream`` defaults to ``KVDB_<node id>`` and ``subjects`` to ``<subject_prefix>.<node
    id>.>``; the stream is created with these (and ``replicas``, ``retention``, ``storage``,
    the limits and the ``duplicate_window`` of its message-id de-duplication) if it does not
    exist, and left as it is if it does. ``max_pending`` publishes are in flight at once.
    Limits of 0 mean unlimited.
    """

    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    stream: str | None = None
    subject_prefix: str = "kvdb"
    subjects: tuple[str, ...] = ()
    replicas: int = 1
    retention: str = "limits"
    storage: str = "file"
    max_age_ms: int = 0
    max_msgs: int = 0
    max_bytes: int = 0
    duplicate_window_ms: int = 120_000
    payload: str = "json"
    max_pending: int = 4096
    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "servers", tuple(self.servers))
        object.__setattr__(self, "subjects", tuple(self.subjects))
        if not self.servers:
            raise InvalidSyncConfig("servers needs at least one NATS URL")
        for url in self.servers:
            _check_url(url, ("nats", "tls"), "nats://127.0.0.1:4222", "NATS server")
        if self.stream is not None and not _STREAM_NAME.match(self.stream):
            raise InvalidSyncConfig(
                f"stream {self.stream!r} must be letters, digits, '_' or '-' (no '.', '*', '>')"
            )
        tokens = self.subject_prefix.split(".") if isinstance(self.subject_prefix, str) else [""]
        if not all(_SUBJECT_TOKEN.match(token) for token in tokens):
            raise InvalidSyncConfig(
                f"subject_prefix {self.subject_prefix!r} must be dot-separated tokens of "
                "letters, digits, '_' or '-', such as kvdb or acme.kvdb"
            )
        _positive(self.replicas, "replicas")
        _choice(self.retention, "retention", ("limits", "interest", "workqueue"))
        _choice(self.storage, "storage", ("file", "memory"))
        _choice(self.payload, "payload", ("json", "msgpack"))
        for name in ("max_age_ms", "max_msgs", "max_bytes"):
            _positive(getattr(self, name), name, zero=True)
        _positive(self.duplicate_window_ms, "duplicate_window_ms")
        _positive(self.max_pending, "max_pending")

    def stream_for(self, node_id: str) -> str:
        return self.stream or "KVDB_" + node_id.replace(".", "_")

    def node_subject(self, node_id: str) -> str:
        """The subject of every message about ``node_id``'s keys is below this one."""
        return f"{self.subject_prefix}.{node_id}"

    def subjects_for(self, node_id: str) -> tuple[str, ...]:
        return self.subjects or (self.node_subject(node_id) + ".>",)


@dataclass(frozen=True)
class PostgresOptions:
    """A PostgreSQL table mirroring the replicated keys (``table`` in ``schema``; default
    ``kvdb_<target name>``), with the checkpoints in ``checkpoint_table`` of the same schema.
    ``json_values`` also decodes each value that is JSON into a ``value_json`` jsonb column."""

    dsn: str = ""
    table: str | None = None
    schema: str = "public"
    checkpoint_table: str = "kvdb_sync_checkpoints"
    json_values: bool = False

    def __post_init__(self) -> None:
        if not self.dsn:
            raise InvalidSyncConfig(
                "a postgres target needs dsn, such as postgresql://user@127.0.0.1:5432/app"
            )
        _check_url(
            self.dsn, ("postgresql", "postgres"), "postgresql://user@127.0.0.1:5432/app", "dsn"
        )
        for name in ("table", "schema", "checkpoint_table"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not _IDENTIFIER.match(value)):
                raise InvalidSyncConfig(
                    f"{name} {value!r} must be a plain SQL identifier: letters, digits and '_', "
                    "at most 63, not starting with a digit"
                )
        if not isinstance(self.json_values, bool):
            raise InvalidSyncConfig(f"json_values must be true or false, got {self.json_values!r}")

    def table_for(self, target_name: str) -> str:
        return self.table or "kvdb_" + re.sub(r"[^A-Za-z0-9_]", "_", target_name)[:58]


@dataclass(frozen=True)
class RedisOptions:
    """Redis keys mirroring the replicated keys: ``<key_prefix><key>``, a hash of value,
    content_type, hlc, origin and deleted (``layout: hash``), or the plain value with the
    versions kept in the hash ``<key_prefix>_versions`` (``layout: string``). The checkpoints
    live in the hash ``<key_prefix>_sync`` (no replicated key starts with ``_``)."""

    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "kvdb:"
    layout: str = "hash"

    def __post_init__(self) -> None:
        _check_url(self.url, ("redis", "rediss", "unix"), "redis://127.0.0.1:6379/0", "url")
        if not isinstance(self.key_prefix, str):
            raise InvalidSyncConfig(f"key_prefix must be a string, got {self.key_prefix!r}")
        _choice(self.layout, "layout", ("hash", "string"))


TargetOptions = JetStreamOptions | PostgresOptions | RedisOptions

_OPTIONS: dict[str, type[JetStreamOptions] | type[PostgresOptions] | type[RedisOptions]] = {
    "jetstream": JetStreamOptions,
    "postgres": PostgresOptions,
    "redis": RedisOptions,
}
EXTERNAL_KINDS = tuple(_OPTIONS)


def options_of(kind: str, value: TargetOptions | Mapping[str, Any] | None) -> TargetOptions:
    """The options of a ``kind`` target, from an options object or a mapping of its fields."""
    cls = _OPTIONS.get(kind)
    if cls is None:
        raise InvalidSyncConfig(
            f"unknown target kind {kind!r}; expected kvdb, {', '.join(EXTERNAL_KINDS)}"
        )
    if isinstance(value, cls):
        return value
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise InvalidSyncConfig(f"the options of a {kind} target must be a mapping")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise InvalidSyncConfig(
            f"{', '.join(unknown)}: not an option of a {kind} target; "
            f"its options are {', '.join(sorted(known))}"
        )
    return cls(**value)
