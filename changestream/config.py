"""``StreamConfig``: what a change stream selects, how it buffers and batches, where it starts."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from kvdb import EventType

from .errors import InvalidStreamConfig
from .filters import EventFilter, parse_event_types, parse_origins

__all__ = ["OverflowPolicy", "StartFrom", "StreamConfig", "config_from_dict"]

_Config = TypeVar("_Config")

StartFrom = Literal["latest", "earliest"] | int
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


class OverflowPolicy(enum.StrEnum):
    """What a consumer's buffer does when the consumer falls ``buffer_size`` events behind.

    ``catch_up`` (default): drop the buffered tail, read the missed events from the durable log
    in capped batches, then rejoin the live tail. Writers never wait, no event is lost.
    ``disconnect``: end the subscription with an ``overflow`` error carrying the last seq
    delivered, for consumers that would rather reconnect than lag.
    """

    CATCH_UP = "catch_up"
    DISCONNECT = "disconnect"


@dataclass(frozen=True)
class StreamConfig:
    """A named change stream.

    ``event_types`` and ``key_patterns`` select events (empty: all); patterns are RE2 regular
    expressions that must match the whole key. ``buffer_size`` bounds each consumer's in-memory
    live tail. A batch goes out when it holds ``batch_size`` events or when its first event has
    waited ``batch_timeout_ms`` (0: as soon as there is anything). With ``enable_persistence``
    each processor's checkpoint is stored in LMDB and pins change-log retention; a restart
    resumes after it. ``start_from`` applies only to a consumer with no checkpoint: ``latest``
    (events committed from now on), ``earliest`` (the oldest retained event) or a seq N
    (events with seq >= N). ``origins`` selects by where a write was made: ``local`` (on
    this node), ``remote`` (replicated to it) or node ids (empty: all).
    """

    name: str
    event_types: frozenset[EventType] = field(default_factory=frozenset)
    key_patterns: tuple[str, ...] = ()
    buffer_size: int = 10_000
    batch_size: int = 100
    batch_timeout_ms: int = 100
    enable_persistence: bool = False
    start_from: StartFrom = "latest"
    on_overflow: OverflowPolicy = OverflowPolicy.CATCH_UP
    origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise InvalidStreamConfig(
                f"stream name {self.name!r} must be 1-128 characters of letters, digits, '_', '.' "
                "or '-' (names starting with '_' are reserved for the system)"
            )
        object.__setattr__(self, "event_types", parse_event_types(self.event_types))
        if isinstance(self.key_patterns, str):
            raise InvalidStreamConfig("key_patterns must be a list of patterns, not one string")
        object.__setattr__(self, "key_patterns", tuple(self.key_patterns))
        _at_least(1, buffer_size=self.buffer_size, batch_size=self.batch_size)
        _at_least(0, batch_timeout_ms=self.batch_timeout_ms)
        if self.batch_size > self.buffer_size:
            raise InvalidStreamConfig(
                f"batch_size ({self.batch_size}) cannot exceed buffer_size ({self.buffer_size})"
            )
        start = self.start_from
        if isinstance(start, bool) or not (
            start in ("latest", "earliest") or (isinstance(start, int) and start >= 1)
        ):
            raise InvalidStreamConfig(
                f"start_from must be 'latest', 'earliest' or a seq >= 1, got {start!r}"
            )
        try:
            object.__setattr__(self, "on_overflow", OverflowPolicy(self.on_overflow))
        except ValueError:
            raise InvalidStreamConfig(
                f"on_overflow must be 'catch_up' or 'disconnect', got {self.on_overflow!r}"
            ) from None
        object.__setattr__(self, "origins", parse_origins(self.origins))
        EventFilter(self.event_types, self.key_patterns)  # raises InvalidPattern

    def event_filter(self) -> EventFilter:
        return EventFilter(self.event_types, self.key_patterns, self.origins)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["event_types"] = sorted(t.value for t in self.event_types)
        doc["key_patterns"] = list(self.key_patterns)
        doc["on_overflow"] = self.on_overflow.value
        doc["origins"] = list(self.origins)
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> StreamConfig:
        return config_from_dict(cls, doc, InvalidStreamConfig, "stream")


def config_from_dict(
    cls: Callable[..., _Config], doc: Mapping[str, Any], error: type[Exception], what: str
) -> _Config:
    """``cls(**doc)`` for a config dataclass (``StreamConfig``, ``EventRoute``...) read from a
    document (a request body, a stored record): unknown or missing fields raise ``error``,
    naming them, instead of a ``TypeError``."""
    known = set(getattr(cls, "__dataclass_fields__", ()))
    unknown = set(doc) - known
    if unknown:
        raise error(
            f"unknown {what} field(s) {', '.join(sorted(unknown))}; expected some of "
            f"{', '.join(sorted(known))}"
        )
    try:
        return cls(**doc)
    except TypeError as exc:
        raise error(f"invalid {what}: {exc}") from exc


def _at_least(minimum: int, **values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InvalidStreamConfig(f"{name} must be an integer >= {minimum}, got {value!r}")
