"""The ``handlers:``, ``routes:`` and ``aggregations:`` sections of the node's YAML file.

``settings/root.py`` includes these models in ``Settings``; they turn the YAML into the event
bus's typed objects (``HandlerSpec``, ``EventRoute``, ``AggregationSpec``). Every check the bus
would make is made here, at load time, on the field it concerns, so an error names the file,
line and field path: an unknown handler in a route, an import path that does not resolve, a
webhook URL that is not http(s), a pattern RE2 rejects, a name used twice. The HTTP API
validates request bodies with the same models.

    handlers:
      - name: billing
        webhook: {url: "https://billing.internal/kvdb", timeout: 5s}
        batch_size: 100
        retry: {max_attempts: 8, initial_delay: 200ms, max_delay: 1m}
      - name: audit
        log: {path: /var/log/kvdb/audit.jsonl}
      - name: enrich
        python: myapp.handlers:on_order
    routes:
      - {name: orders, key_patterns: ["orders/.*"], handler_names: [billing, audit]}
"""

from __future__ import annotations

import collections
import contextvars
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from changestream import ChangeStreamError, compile_pattern, parse_event_types
from eventbus import (
    AggregationSpec,
    BusSetup,
    EventBusError,
    EventRoute,
    HandlerSpec,
    LogTarget,
    PythonTarget,
    RetryPolicy,
    WebhookTarget,
    resolve_callable,
)
from eventbus.config import check_name
from eventbus.webhook import check_webhook_url

from .base import Section, defaults_of
from .units import Duration

__all__ = [
    "AggregationSettings",
    "HandlerSettings",
    "RouteSettings",
    "bus_declarations",
    "bus_setup",
]

_RETRY = defaults_of(RetryPolicy)
_AGGREGATION = defaults_of(AggregationSpec)


def _bus_error(check: Callable[[], Any]) -> Any:
    """Run an event-bus check, reporting its error as a field error."""
    try:
        return check()
    except (EventBusError, ChangeStreamError) as exc:
        raise ValueError(exc.message) from None


class _Declared:
    """Names declared in the file being validated, for checks across sections."""

    def __init__(self, data: dict[str, Any]) -> None:
        def names(section: str) -> collections.Counter[str]:
            items = data.get(section)
            items = items if isinstance(items, list | tuple) else []
            return collections.Counter(
                item["name"] for item in items if isinstance(item, dict) and "name" in item
            )

        self.handlers = names("handlers")
        self.routes = names("routes")
        self.aggregations = names("aggregations")


_DECLARED: contextvars.ContextVar[_Declared | None] = contextvars.ContextVar(
    "declared_bus_names", default=None
)


def bus_declarations(cls: Any, data: Any, handler: Callable[[Any], Any]) -> Any:
    """A wrap validator for ``Settings``: while the file validates, routes can check their
    handler names against the file's ``handlers:``, and names their uniqueness."""
    token = _DECLARED.set(_Declared(data) if isinstance(data, dict) else None)
    try:
        return handler(data)
    finally:
        _DECLARED.reset(token)


def _unique(kind: str, name: str, counts: Callable[[_Declared], collections.Counter[str]]) -> str:
    _bus_error(lambda: check_name(kind, name))
    declared = _DECLARED.get()
    if declared is not None and counts(declared)[name] > 1:
        raise ValueError(f"{kind} names must be unique; {name!r} is declared more than once")
    return name


class RetrySettings(Section):
    max_attempts: int = Field(_RETRY["max_attempts"], ge=1)
    initial_delay: Duration = Field(_RETRY["initial_delay_ms"], ge=0)
    max_delay: Duration = Field(_RETRY["max_delay_ms"], ge=0)
    jitter: float = Field(_RETRY["jitter"], ge=0, le=1)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            initial_delay_ms=self.initial_delay,
            max_delay_ms=self.max_delay,
            jitter=self.jitter,
        )

    @field_validator("max_delay")
    @classmethod
    def _not_below_initial(cls, value: int, info: ValidationInfo) -> int:
        initial = info.data.get("initial_delay")
        if initial is not None and value < initial:
            raise ValueError(f"must be at least initial_delay ({initial} ms), got {value} ms")
        return value


class WebhookSettings(Section):
    url: str
    timeout: Duration = Field(defaults_of(WebhookTarget)["timeout_ms"], ge=1)
    headers: dict[str, str] = {}

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        return str(_bus_error(lambda: check_webhook_url(url)))


class LogSettings(Section):
    path: Path
    fsync: bool = False

    @field_validator("path")
    @classmethod
    def _directory_exists(cls, path: Path) -> Path:
        if not path.parent.is_dir():
            raise ValueError(
                f"directory {str(path.parent)!r} does not exist; create it or choose another path"
            )
        return path


class HandlerSettings(Section):
    """One handler: ``name`` and exactly one of ``webhook``, ``log`` or ``python``."""

    name: str
    webhook: WebhookSettings | None = None
    log: LogSettings | None = None
    python: str | None = None
    batch_size: int | None = Field(None, ge=1)
    flush_interval: Duration | None = Field(None, ge=0)
    retry: RetrySettings | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _unique("handler", name, lambda d: d.handlers)

    @field_validator("python")
    @classmethod
    def _resolves(cls, path: str | None, info: ValidationInfo) -> str | None:
        if path is not None:
            _bus_error(lambda: resolve_callable(path, info.data.get("name", "?")))
        return path

    @model_validator(mode="after")
    def _one_kind(self) -> HandlerSettings:
        kinds = [kind for kind in ("webhook", "log", "python") if getattr(self, kind) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of webhook, log or python"
                + (f" (this handler has {' and '.join(kinds)})" if kinds else "")
            )
        _bus_error(self.handler_spec)  # whatever else the bus checks (sizes, timeouts)
        return self

    def handler_spec(self) -> HandlerSpec:
        target: WebhookTarget | LogTarget | PythonTarget
        if self.webhook is not None:
            webhook = self.webhook
            target = WebhookTarget(webhook.url, webhook.timeout, tuple(webhook.headers.items()))
        elif self.log is not None:
            target = LogTarget(str(self.log.path), self.log.fsync)
        else:
            assert self.python is not None
            target = PythonTarget(self.python)
        return HandlerSpec(
            self.name,
            target,
            batch_size=self.batch_size,
            flush_interval_ms=self.flush_interval,
            retry=None if self.retry is None else self.retry.retry_policy(),
        )


def _patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in patterns:
        _bus_error(lambda pattern=pattern: compile_pattern(pattern))  # type: ignore[misc]
    return patterns


def _types(types: tuple[str, ...]) -> tuple[str, ...]:
    _bus_error(lambda: parse_event_types(types))
    return types


class RouteSettings(Section):
    """One route; the names are those of ``eventbus.EventRoute``."""

    name: str
    event_types: tuple[str, ...] = ()
    key_patterns: tuple[str, ...] = ()
    handler_names: tuple[str, ...] = Field(min_length=1)
    priority: int = 0
    final: bool = False
    origins: tuple[str, ...] = ()  # local, remote or node ids (empty: every origin)

    _check_patterns = field_validator("key_patterns")(_patterns)
    _check_types = field_validator("event_types")(_types)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _unique("route", name, lambda d: d.routes)

    @field_validator("handler_names")
    @classmethod
    def _declared(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        declared = _DECLARED.get()
        if declared is None:
            return names  # outside a file (an HTTP body): the bus checks against its handlers
        missing = [name for name in names if name not in declared.handlers]
        if missing:
            known = ", ".join(sorted(declared.handlers)) or "none"
            raise ValueError(
                f"unknown handler(s) {', '.join(missing)}; handlers declared in this file: {known}"
            )
        return names

    @model_validator(mode="after")
    def _valid_route(self) -> RouteSettings:
        _bus_error(self.event_route)
        return self

    def event_route(self) -> EventRoute:
        return EventRoute(
            self.name,
            parse_event_types(self.event_types),
            self.key_patterns,
            self.handler_names,
            self.priority,
            self.final,
            self.origins,
        )


class AggregationSettings(Section):
    """Counts (and sums) per key pattern and event type over tumbling windows."""

    name: str
    window: Duration = Field(ge=1)
    key_patterns: tuple[str, ...] = Field(_AGGREGATION["key_patterns"], min_length=1)
    event_types: tuple[str, ...] = ()
    sum_fields: tuple[str, ...] = ()
    keep: int = Field(_AGGREGATION["keep_windows"], ge=1)

    _check_patterns = field_validator("key_patterns")(_patterns)
    _check_types = field_validator("event_types")(_types)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _unique("aggregation", name, lambda d: d.aggregations)

    @field_validator("sum_fields")
    @classmethod
    def _paths(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for path in paths:
            if not path or "" in path.split("."):
                raise ValueError(
                    f"{path!r} is not a JSON field name or a dotted path such as 'order.total'"
                )
        return paths

    @model_validator(mode="after")
    def _valid_aggregation(self) -> AggregationSettings:
        _bus_error(self.aggregation_spec)
        return self

    def aggregation_spec(self) -> AggregationSpec:
        return AggregationSpec(
            self.name,
            self.window,
            self.key_patterns,
            parse_event_types(self.event_types),
            self.sum_fields,
            self.keep,
        )


def bus_setup(
    handlers: tuple[HandlerSettings, ...],
    routes: tuple[RouteSettings, ...],
    aggregations: tuple[AggregationSettings, ...],
) -> BusSetup:
    """The bus's start-up declarations from the validated sections."""
    return BusSetup(
        handlers=tuple(h.handler_spec() for h in handlers),
        routes=tuple(r.event_route() for r in routes),
        aggregations=tuple(a.aggregation_spec() for a in aggregations),
    )
