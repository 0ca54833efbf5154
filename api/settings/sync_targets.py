"""One entry of a ``sync:`` entry's ``targets``: another node (``kind: kvdb``, the default) or
an external system (``jetstream``, ``postgres``, ``redis``; ``sync.targets``), its options
written beside ``kind`` and ``name``::

    targets:
      - node_id: b                                   # kind: kvdb
        endpoints: ["http://10.0.0.2:8080"]
        token: ${KVDB_SYNC_TOKEN:-}
      - kind: jetstream
        name: events                                 # names the target and its checkpoint
        servers: ["nats://127.0.0.1:4222"]           # later ones: failover
        stream: KVDB_a                               # default KVDB_<node id>
        subject_prefix: kvdb                         # subjects <prefix>.<node>.<key tokens>
        subjects: ["kvdb.a.>"]                       # the stream's, if it is created
        replicas: 1
        retention: limits                            # limits | interest | workqueue
        storage: file                                # file | memory
        max_age: 7d                                  # 0: unlimited (and max_msgs, max_bytes)
        duplicate_window: 2m                         # JetStream's message-id de-duplication
        payload: json                                # json | msgpack
        max_pending: 4096                            # publishes in flight
        user: null                                   # or token, or creds (a .creds file)
        password: null
      - kind: postgres
        name: mirror
        dsn: postgresql://kvdb@127.0.0.1:5432/app
        schema: public
        table: kvdb_mirror                           # default kvdb_<name>
        checkpoint_table: kvdb_sync_checkpoints
        json_values: false                           # also a jsonb column of JSON values
      - kind: redis
        name: cache
        url: redis://127.0.0.1:6379/0
        key_prefix: "kv:"
        layout: hash                                 # hash | string

An option of another kind than the entry's is refused on its own line; a missing one (a
postgres target without ``dsn``) on the entry's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from sync import SyncError, TargetConfig
from sync.config import check_endpoint
from sync.targets.options import JetStreamOptions, PostgresOptions, RedisOptions, options_of

from .base import Section, empty_is_none
from .units import Duration, Size

__all__ = ["TargetSettings"]

Optional = Annotated[str | None, BeforeValidator(empty_is_none)]

# The settings' fields of each kind (``token`` serves kvdb and jetstream alike).
_FIELDS = {
    "kvdb": {"node_id", "endpoints", "token"},
    "jetstream": {
        "servers", "stream", "subject_prefix", "subjects", "replicas", "retention", "storage",
        "max_age", "max_msgs", "max_bytes", "duplicate_window", "payload", "max_pending",
        "user", "password", "token", "creds",
    },
    "postgres": {"dsn", "schema", "table", "checkpoint_table", "json_values"},
    "redis": {"url", "key_prefix", "layout"},
}  # fmt: skip
_REQUIRED = {"kvdb": ("node_id", "endpoints"), "postgres": ("dsn",)}
_IN_MS = {"max_age": "max_age_ms", "duplicate_window": "duplicate_window_ms"}


def _sync_error(check: Any) -> Any:
    try:
        return check()
    except SyncError as exc:
        raise ValueError(exc.message) from None


class TargetSettings(Section):
    kind: Literal["kvdb", "jetstream", "postgres", "redis"] = "kvdb"
    name: str | None = None
    # kind: kvdb
    node_id: str | None = None
    endpoints: tuple[str, ...] = ()
    token: Optional = None
    # kind: jetstream
    servers: tuple[str, ...] = Field((), min_length=1)
    stream: Optional = None
    subject_prefix: str = "kvdb"
    subjects: tuple[str, ...] = ()
    replicas: int = Field(1, ge=1)
    retention: Literal["limits", "interest", "workqueue"] = "limits"
    storage: Literal["file", "memory"] = "file"
    max_age: Duration = Field(0, ge=0)
    max_msgs: int = Field(0, ge=0)
    max_bytes: Size = Field(0, ge=0)
    duplicate_window: Duration = Field(120_000, ge=1)
    payload: Literal["json", "msgpack"] = "json"
    max_pending: int = Field(4096, ge=1)
    user: Optional = None
    password: Optional = None
    creds: Optional = None
    # kind: postgres
    dsn: str = ""
    schema_: str = Field("public", alias="schema")
    table: Optional = None
    checkpoint_table: str = "kvdb_sync_checkpoints"
    json_values: bool = False
    # kind: redis
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "kvdb:"
    layout: Literal["hash", "string"] = "hash"

    @field_validator("*")
    @classmethod
    def _of_this_kind(cls, value: Any, info: ValidationInfo) -> Any:
        """An option given for another kind of target is a mistake: say so on its line."""
        field = "schema" if info.field_name == "schema_" else str(info.field_name)
        kind = info.data.get("kind")
        if kind is not None and field not in ("kind", "name") and field not in _FIELDS[kind]:
            owners = [k for k, names in _FIELDS.items() if field in names]
            raise ValueError(f"not an option of a {kind} target (it is one of {', '.join(owners)})")
        return value

    @field_validator("node_id")
    @classmethod
    def _not_this_node(cls, node_id: str | None, info: ValidationInfo) -> str | None:
        local = (info.context or {}).get("node_id")
        if local is not None and node_id == local:
            raise ValueError(f"{node_id!r} is this node's own id; a node does not sync to itself")
        return node_id

    @field_validator("endpoints")
    @classmethod
    def _urls(cls, endpoints: tuple[str, ...]) -> tuple[str, ...]:
        for url in endpoints:
            _sync_error(lambda url=url: check_endpoint(url))
        return endpoints

    @field_validator("servers")
    @classmethod
    def _nats_urls(cls, servers: tuple[str, ...]) -> tuple[str, ...]:
        _sync_error(lambda: JetStreamOptions(servers=servers))
        return servers

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, dsn: str) -> str:
        _sync_error(lambda: PostgresOptions(dsn=dsn))
        return dsn

    @field_validator("url")
    @classmethod
    def _redis_url(cls, url: str) -> str:
        _sync_error(lambda: RedisOptions(url=url))
        return url

    @model_validator(mode="after")
    def _complete(self) -> TargetSettings:
        missing = [f for f in _REQUIRED.get(self.kind, ()) if f not in self.model_fields_set]
        if missing:
            raise ValueError(f"a {self.kind} target needs {' and '.join(missing)}")
        if self.kind == "kvdb" and self.name is not None:
            raise ValueError("a kvdb target is named by its node_id; name is for other kinds")
        if self.kind != "kvdb" and self.name is None:
            raise ValueError(f"a {self.kind} target needs a name (it keys its checkpoint)")
        self.target_config()
        return self

    def target_config(self) -> TargetConfig:
        if self.kind == "kvdb":
            return _sync_error(  # type: ignore[no-any-return]
                lambda: TargetConfig(self.node_id or "", self.endpoints, self.token)
            )
        given = self.model_fields_set - {"kind", "name"}
        options = {
            _IN_MS.get(f, "schema" if f == "schema_" else f): getattr(self, f) for f in given
        }
        return _sync_error(  # type: ignore[no-any-return]
            lambda: TargetConfig(
                kind=self.kind, name=self.name, options=options_of(self.kind, options)
            )
        )
