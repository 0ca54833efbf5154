"""Typed knobs of the bus: ``RetryPolicy`` (backoff with jitter) and ``BusConfig``."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from .errors import InvalidBusConfig

__all__ = ["BusConfig", "RetryPolicy", "check_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_name(kind: str, name: object, error: type[InvalidBusConfig] = InvalidBusConfig) -> str:
    """Handler, route and aggregation names appear in URLs, LMDB keys and metric labels."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise error(
            f"{kind} name {name!r} must be 1-128 characters of letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing delivery is retried before it goes to the dead-letter store.

    ``max_attempts`` counts every try, the first included (1: never retry). After failed
    attempt ``n`` the bus waits ``min(max_delay_ms, initial_delay_ms * 2**(n-1))``, scaled by
    a random factor in ``[1 - jitter, 1]`` so that handlers failing together do not retry in
    lockstep (AWS's "full jitter" is ``jitter=1``).
    """

    max_attempts: int = 5
    initial_delay_ms: float = 100
    max_delay_ms: float = 30_000
    jitter: float = 0.5

    def __post_init__(self) -> None:
        for name in ("max_attempts", "initial_delay_ms", "max_delay_ms", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidBusConfig(f"retry {name} must be a number, got {value!r}")
        if self.max_attempts < 1 or self.max_attempts != int(self.max_attempts):
            raise InvalidBusConfig(
                f"retry max_attempts must be an integer >= 1, got {self.max_attempts!r}"
            )
        if self.initial_delay_ms < 0 or self.max_delay_ms < self.initial_delay_ms:
            raise InvalidBusConfig(
                "retry delays must satisfy 0 <= initial_delay <= max_delay, got "
                f"{self.initial_delay_ms} and {self.max_delay_ms} ms"
            )
        if not 0 <= self.jitter <= 1:
            raise InvalidBusConfig(f"retry jitter must be within 0..1, got {self.jitter!r}")

    def delay_ms(self, failed_attempts: int, rng: random.Random) -> float:
        """How long to wait after the ``failed_attempts``-th failure (counting from 1)."""
        exponent = min(max(failed_attempts - 1, 0), 62)
        base = min(self.max_delay_ms, self.initial_delay_ms * 2.0**exponent)
        return base * (1 - self.jitter * rng.random())

    def to_dict(self) -> dict[str, float]:
        return {
            "max_attempts": self.max_attempts,
            "initial_delay_ms": self.initial_delay_ms,
            "max_delay_ms": self.max_delay_ms,
            "jitter": self.jitter,
        }


@dataclass(frozen=True)
class BusConfig:
    """The bus's system stream and its runners.

    Every handler reads ``stream`` (a durable system stream over the whole log) through its
    own cursor: ``buffer_size`` bounds that cursor's live tail (a handler further behind reads
    the log instead) and ``batch_size`` caps the events one cursor read hands over. A handler's
    checkpoint is written at most every ``checkpoint_interval_ms`` while it is busy (and when it
    goes idle or stops): after a crash it may see again what it handled since, never less.
    ``retry`` applies to handlers that do not bring their own policy. Each handler keeps at
    most ``max_dead_letters`` dead letters: past that, the oldest are evicted (counted in the
    handler's ``dead_letters_evicted`` and logged), like a dead-letter queue with a length
    limit, so a handler that fails on everything cannot fill the disk.
    """

    stream: str = "_bus"
    buffer_size: int = 100_000
    batch_size: int = 1000
    checkpoint_interval_ms: float = 200
    idle_interval_ms: float = 1000
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_dead_letters: int = 10_000

    def __post_init__(self) -> None:
        if not self.stream.startswith("_"):
            raise InvalidBusConfig(
                f"the bus stream name {self.stream!r} must start with '_' (reserved for the "
                "system), so that /streams cannot change or delete it"
            )
        if not 1 <= self.batch_size <= self.buffer_size:
            raise InvalidBusConfig(
                f"bus batch_size must be within 1..buffer_size ({self.buffer_size}), got "
                f"{self.batch_size}"
            )
        if isinstance(self.max_dead_letters, bool) or not (
            isinstance(self.max_dead_letters, int) and self.max_dead_letters >= 1
        ):
            raise InvalidBusConfig(
                f"max_dead_letters must be an integer >= 1, got {self.max_dead_letters!r}"
            )
        if self.checkpoint_interval_ms < 0 or self.idle_interval_ms <= 0:
            raise InvalidBusConfig(
                "checkpoint_interval_ms must be >= 0 and idle_interval_ms > 0, got "
                f"{self.checkpoint_interval_ms} and {self.idle_interval_ms}"
            )
