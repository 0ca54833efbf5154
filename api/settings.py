"""Node settings: defaults -> YAML file -> ``${ENV}`` expansion -> validation, once, here.

This is the only module that reads YAML. It turns the file into typed settings and those into
the frozen config objects the packages take (``kvdb.StoreConfig``...). Every error names the
file, the line, the field path and what was expected::

    config/kvdb.yaml:14: node.retention.max_events: expected an integer >= 0, got 'lots'
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from changestream import ChangeStreamError, StreamConfig
from kvdb import Durability, Limits, RetentionPolicy, StoreConfig
from kvdb.config import GiB, MiB

from .bus_settings import (
    AggregationSettings,
    HandlerSettings,
    RouteSettings,
    bus_declarations,
)
from .errors import ConfigError
from .pipeline_settings import PipelineSettings
from .units import Duration, Size

__all__ = [
    "NodeSettings",
    "ServerSettings",
    "Settings",
    "StreamSettings",
    "SubscriptionSettings",
    "TokenSettings",
    "load_settings",
]


def _empty_is_none(value: Any) -> Any:
    """``${VAR:-}`` expands to "": for optional fields that means "not set"."""
    return None if value == "" else value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitSettings(_Section):
    max_value_size: Size = Field(16 * MiB, ge=1, lt=2**32 - 1)
    max_batch_ops: int = Field(10_000, ge=1)
    max_batch_size: Size = Field(64 * MiB, ge=1)


class RetentionSettings(_Section):
    max_events: int | None = Field(1_000_000, ge=0)
    max_age: Duration | None = Field(7 * 86_400_000, ge=0)
    hard_max_events: int | None = Field(50_000_000, ge=0)
    compaction_interval: Duration = Field(10_000, ge=1)


class NodeSettings(_Section):
    id: Annotated[str | None, BeforeValidator(_empty_is_none)] = Field(
        None, min_length=1, max_length=64
    )
    data_dir: Path = Path("kvdb-data")
    durability: Durability = Durability.FULL
    map_size: Size = Field(1 * GiB, ge=1 * MiB)
    max_map_size: Annotated[Size | None, BeforeValidator(_empty_is_none)] = None
    flush_interval: Duration = Field(1000, ge=1)
    tombstone_grace: Duration = Field(86_400_000, ge=0)
    limits: LimitSettings = LimitSettings()
    retention: RetentionSettings = RetentionSettings()

    def store_config(self) -> StoreConfig:
        return StoreConfig(
            data_dir=self.data_dir,
            node_id=self.id,
            durability=self.durability,
            map_size=self.map_size,
            max_map_size=self.max_map_size,
            flush_interval_ms=self.flush_interval,
            limits=Limits(
                max_value_bytes=self.limits.max_value_size,
                max_batch_ops=self.limits.max_batch_ops,
                max_batch_bytes=self.limits.max_batch_size,
            ),
            retention=RetentionPolicy(
                max_events=self.retention.max_events,
                max_age_ms=self.retention.max_age,
                hard_max_events=self.retention.hard_max_events,
                compaction_interval_ms=self.retention.compaction_interval,
            ),
            tombstone_grace_ms=self.tombstone_grace,
        )


def _long_enough(token: SecretStr) -> SecretStr:
    if len(token.get_secret_value()) < 16:
        # The message never repeats the token: config errors end up in logs.
        raise ValueError(
            "a token must be at least 16 characters; generate one with: openssl rand -hex 24"
        )
    return token


class TokenSettings(_Section):
    token: Annotated[SecretStr, AfterValidator(_long_enough)]
    role: Literal["read", "write", "admin"]
    name: str | None = None


class SubscriptionSettings(_Section):
    """Limits of each live subscription (WebSocket, SSE, long-poll)."""

    buffer_size: int = Field(10_000, ge=1)
    max_batch: int = Field(1000, ge=1)
    progress_interval: Duration = Field(5000, ge=1)
    stall_timeout: Duration = Field(30_000, ge=1)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    access_log: bool = False
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    tokens: tuple[TokenSettings, ...] = ()
    allow_unauthenticated_remote: bool = False
    subscriptions: SubscriptionSettings = SubscriptionSettings()


class StreamSettings(_Section):
    """One entry of ``streams:``; the names are those of ``changestream.StreamConfig``."""

    name: str
    event_types: tuple[str, ...] = ()
    key_patterns: tuple[str, ...] = ()
    buffer_size: int = Field(10_000, ge=1)
    batch_size: int = Field(100, ge=1)
    batch_timeout_ms: int = Field(100, ge=0)
    enable_persistence: bool = False
    start_from: Literal["latest", "earliest"] | Annotated[int, Field(ge=1)] = "latest"
    on_overflow: Literal["catch_up", "disconnect"] = "catch_up"

    @model_validator(mode="after")
    def _valid_stream(self) -> StreamSettings:
        self.stream_config()  # pattern syntax, type names, sizes: reported with the field path
        return self

    def stream_config(self) -> StreamConfig:
        try:
            return StreamConfig.from_dict(self.model_dump())
        except ChangeStreamError as exc:
            raise ValueError(exc.message) from None


class Settings(_Section):
    node: NodeSettings = NodeSettings()
    server: ServerSettings = ServerSettings()
    streams: tuple[StreamSettings, ...] = ()
    handlers: tuple[HandlerSettings, ...] = ()
    routes: tuple[RouteSettings, ...] = ()
    aggregations: tuple[AggregationSettings, ...] = ()
    pipelines: tuple[PipelineSettings, ...] = ()  # api/pipeline_settings.py
    source: str | None = Field(None, exclude=True)

    # Routes check their handler names against this file's handlers (api/bus_settings.py).
    _bus_declarations = model_validator(mode="wrap")(bus_declarations)

    @field_validator("streams")
    @classmethod
    def _unique_stream_names(
        cls, streams: tuple[StreamSettings, ...]
    ) -> tuple[StreamSettings, ...]:
        names = [stream.name for stream in streams]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"stream names must be unique; repeated: {', '.join(duplicates)}")
        return streams


def load_settings(
    path: str | Path | None = None, overrides: dict[str, dict[str, Any]] | None = None
) -> Settings:
    """Settings from ``path`` (YAML), or the defaults when ``path`` is None. ``overrides``
    (e.g. command-line options) replace fields per section; None values are ignored."""
    data, lines, source = _read_yaml(Path(path)) if path is not None else ({}, {}, "<defaults>")
    for section, fields in (overrides or {}).items():
        given = {k: v for k, v in fields.items() if v is not None}
        if given:
            current = data.get(section)
            data[section] = {**(current if isinstance(current, dict) else {}), **given}
    return _validate(data, source, lines)


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[tuple[Any, ...], int], str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if data is None:
        data = {}
    lines = _line_numbers(root)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping of sections (node, server, ...)")
    return _expand_env(data, (), str(path), lines), lines, str(path)


def _validate(data: dict[str, Any], source: str, lines: dict[tuple[Any, ...], int]) -> Settings:
    try:
        settings = Settings.model_validate({**data, "source": source})
    except PydanticValidationError as exc:
        raise ConfigError(_describe(exc, source, lines)) from exc
    return settings


def _describe(exc: PydanticValidationError, source: str, lines: dict[tuple[Any, ...], int]) -> str:
    problems = []
    for error in exc.errors():
        loc = tuple(part for part in error["loc"] if not str(part).startswith("function-"))
        path = ".".join(str(part) for part in loc) or "(top level)"
        line = _nearest_line(lines, loc)
        where = f"{source}:{line}" if line else source
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field; check the spelling against config/kvdb.yaml"
        elif "input" in error and error["type"] not in ("missing", "value_error"):
            message = f"{message}, got {error['input']!r}"
        problems.append(f"{where}: {path}: {message}")
    return "\n".join(problems)


def _nearest_line(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _line_numbers(node: yaml.Node | None, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map each field path in the YAML document to its 1-based line."""
    lines: dict[tuple[Any, ...], int] = {}
    if node is None:
        return lines
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, key_node.value)
            lines.update(_line_numbers(value_node, child))
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_line_numbers(item, (*path, index)))
    return lines


_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: Any, path: tuple[Any, ...], source: str, lines: dict[Any, int]) -> Any:
    """Replace ``${NAME}`` and ``${NAME:-default}`` in every string; ``$$`` is a literal $."""
    if isinstance(value, dict):
        return {k: _expand_env(v, (*path, k), source, lines) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, (*path, i), source, lines) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        line = _nearest_line(lines, path)
        raise ConfigError(
            f"{source}:{line}: {'.'.join(map(str, path))}: environment variable {name} is not "
            f"set; set it or write ${{{name}:-default}}"
        )

    return _ENV_REF.sub(substitute, value)
