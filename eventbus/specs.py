"""``HandlerSpec``: a handler described by data (YAML, an HTTP body, a stored record) rather than
by code, for the built-in kinds:

* ``webhook``: POST JSON batches to a URL (``WebhookHandler``);
* ``log``: append JSON lines to a file (``LogFileHandler``);
* ``python``: call ``package.module:function``, with each event, or with lists of events when
  a ``batch_size`` or ``flush_interval_ms`` is given.

Specs are checked when they are made (URL scheme, import path, sizes), so bad configuration
fails before anything is applied; ``build`` then makes the handler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from changestream import resolve_import_path

from .config import RetryPolicy, check_name
from .errors import EventBusError, InvalidHandler
from .handlers import BaseEventHandler, BatchEventHandler, FunctionEventHandler
from .logfile import LogFileHandler
from .webhook import DEFAULT_TIMEOUT_MS, WebhookHandler, check_webhook_url

__all__ = [
    "HandlerSpec",
    "HandlerTarget",
    "LogTarget",
    "PythonTarget",
    "WebhookTarget",
    "resolve_callable",
]


def resolve_callable(path: str, handler: str = "?") -> Callable[..., Any]:
    """The function a python handler names (``package.module:function``), or
    ``InvalidHandler`` saying why there is none."""
    try:
        return resolve_import_path(path)
    except ValueError as exc:
        raise InvalidHandler(f"handler {handler!r}: {exc}") from exc


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    timeout_ms: float = DEFAULT_TIMEOUT_MS
    headers: tuple[tuple[str, str], ...] = ()

    kind = "webhook"

    def __post_init__(self) -> None:
        if isinstance(self.headers, Mapping):
            object.__setattr__(self, "headers", tuple(sorted(self.headers.items())))

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "timeout_ms": self.timeout_ms, "headers": dict(self.headers)}


@dataclass(frozen=True)
class LogTarget:
    path: str
    fsync: bool = False

    kind = "log"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "fsync": self.fsync}


@dataclass(frozen=True)
class PythonTarget:
    function: str

    kind = "python"

    def to_dict(self) -> dict[str, Any]:
        return {"function": self.function}


HandlerTarget = WebhookTarget | LogTarget | PythonTarget
_TARGETS: dict[str, type[WebhookTarget] | type[LogTarget] | type[PythonTarget]] = {
    "webhook": WebhookTarget,
    "log": LogTarget,
    "python": PythonTarget,
}


@dataclass(frozen=True)
class HandlerSpec:
    """A built-in handler. ``batch_size``/``flush_interval_ms`` None mean the kind's default
    (webhook 100 / 100 ms, log 1000 / 0, python: one event per call)."""

    name: str
    target: HandlerTarget
    batch_size: int | None = None
    flush_interval_ms: float | None = None
    retry: RetryPolicy | None = None

    def __post_init__(self) -> None:
        check_name("handler", self.name, InvalidHandler)
        if not isinstance(self.target, WebhookTarget | LogTarget | PythonTarget):
            raise InvalidHandler(
                f"handler {self.name!r}: give one of webhook, log or python, got {self.target!r}"
            )
        if isinstance(self.target, WebhookTarget):
            check_webhook_url(self.target.url, self.name)
        if isinstance(self.target, PythonTarget):
            resolve_callable(self.target.function, self.name)
        self.build()  # sizes, timeouts, header types: every check the handler itself makes

    @property
    def kind(self) -> str:
        return self.target.kind

    def build(self) -> BaseEventHandler:
        """A new, not yet started, handler for this spec."""
        target, name, retry = self.target, self.name, self.retry
        sizes: dict[str, Any] = {}
        if self.batch_size is not None:
            sizes["batch_size"] = self.batch_size
        if self.flush_interval_ms is not None:
            sizes["flush_interval_ms"] = self.flush_interval_ms
        if isinstance(target, WebhookTarget):
            return WebhookHandler(
                name, target.url, timeout_ms=target.timeout_ms, headers=dict(target.headers),
                retry=retry, **sizes,
            )  # fmt: skip
        if isinstance(target, LogTarget):
            return LogFileHandler(name, target.path, fsync=target.fsync, retry=retry, **sizes)
        fn = resolve_callable(target.function, name)
        if sizes:
            return BatchEventHandler(name, fn, retry=retry, **sizes)
        return FunctionEventHandler(name, fn, retry=retry)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            self.kind: self.target.to_dict(),
            "batch_size": self.batch_size,
            "flush_interval_ms": self.flush_interval_ms,
            "retry": None if self.retry is None else self.retry.to_dict(),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> HandlerSpec:
        """The inverse of ``to_dict`` (used for stored definitions)."""
        kinds = [kind for kind in _TARGETS if kind in doc]
        if len(kinds) != 1:
            raise InvalidHandler(
                f"handler {doc.get('name')!r}: give exactly one of webhook, log or python"
            )
        try:
            target = _TARGETS[kinds[0]](**doc[kinds[0]])
            retry = doc.get("retry")
            return cls(
                name=doc["name"],
                target=target,
                batch_size=doc.get("batch_size"),
                flush_interval_ms=doc.get("flush_interval_ms"),
                retry=None if retry is None else RetryPolicy(**retry),
            )
        except EventBusError:
            raise
        except (TypeError, KeyError) as exc:
            raise InvalidHandler(f"invalid handler definition {dict(doc)!r}: {exc}") from exc
