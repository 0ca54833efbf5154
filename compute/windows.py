"""Window specifications and their assignment arithmetic.

Every window is a half-open interval of event time, ``[start, end)``, in ms since the epoch.

- ``Tumbling(size, offset)``: back-to-back windows ``[offset + n*size, offset + (n+1)*size)``.
- ``Sliding(size, slide, offset)``: windows of ``size`` starting every ``slide`` (SQL ``HOP``);
  an event belongs to ``ceil(size / slide)`` of them.
- ``Session(gap)``: per key, an event opens ``[t, t + gap)``; sessions that overlap or touch
  merge into one, so a session is ``[first, last + gap)``.

Fixed windows are aligned to the epoch, shifted by ``offset`` (reduced modulo ``size`` or
``slide``: an offset of one size is the same alignment as none).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .errors import PipelineDefinitionError
from .timestamps import to_duration_ms

__all__ = ["Session", "Sliding", "Tumbling", "WindowSpec", "window_starts"]

Duration = int | timedelta


def _ms(value: Duration, what: str, minimum: int) -> int:
    try:
        return to_duration_ms(value, what, minimum=minimum)
    except ValueError as exc:
        raise PipelineDefinitionError(str(exc)) from None


@dataclass(frozen=True, init=False)
class Tumbling:
    size: int
    offset: int

    def __init__(self, size: Duration, offset: Duration = 0) -> None:
        size_ms = _ms(size, "a tumbling window's size", 1)
        offset_ms = _ms(offset, "a window's offset", -(2**62))
        object.__setattr__(self, "size", size_ms)
        object.__setattr__(self, "offset", offset_ms % size_ms)

    def start_of(self, t: int) -> int:
        return t - (t - self.offset) % self.size

    def describe(self) -> dict[str, Any]:
        return {"kind": "tumbling", "size": self.size, "offset": self.offset}


@dataclass(frozen=True, init=False)
class Sliding:
    size: int
    slide: int
    offset: int

    def __init__(self, size: Duration, slide: Duration, offset: Duration = 0) -> None:
        size_ms = _ms(size, "a sliding window's size", 1)
        slide_ms = _ms(slide, "a sliding window's slide", 1)
        if slide_ms > size_ms:
            raise PipelineDefinitionError(
                f"a sliding window's slide ({slide_ms} ms) cannot exceed its size ({size_ms} ms): "
                "events between windows would belong to none"
            )
        offset_ms = _ms(offset, "a window's offset", -(2**62))
        object.__setattr__(self, "size", size_ms)
        object.__setattr__(self, "slide", slide_ms)
        object.__setattr__(self, "offset", offset_ms % slide_ms)

    def describe(self) -> dict[str, Any]:
        return {"kind": "sliding", "size": self.size, "slide": self.slide, "offset": self.offset}


@dataclass(frozen=True, init=False)
class Session:
    gap: int

    def __init__(self, gap: Duration) -> None:
        object.__setattr__(self, "gap", _ms(gap, "a session window's gap", 1))

    def describe(self) -> dict[str, Any]:
        return {"kind": "session", "gap": self.gap}


WindowSpec = Tumbling | Sliding | Session


def window_starts(spec: Tumbling | Sliding, t: int) -> list[int]:
    """Starts of the fixed windows that contain ``t``, latest first (reference form of the
    arithmetic the operators inline)."""
    if isinstance(spec, Tumbling):
        return [t - (t - spec.offset) % spec.size]
    start = t - (t - spec.offset) % spec.slide
    starts = []
    while start > t - spec.size:
        starts.append(start)
        start -= spec.slide
    return starts
