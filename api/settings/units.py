"""Human units in configuration: sizes (``16MiB``) and durations (``500ms``, ``7d``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = ["Duration", "Size", "parse_duration_ms", "parse_size"]

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_DURATION_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: Any) -> int:
    """Bytes from an integer or a string such as ``512KiB``, ``16MiB``, ``1GB``."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 16MiB or a number of bytes")
    if isinstance(value, int):
        return value
    match = _NUMBER_UNIT.match(str(value))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise ValueError(
            f"expected a size such as 512KiB, 16MiB, 1GiB or a number of bytes, got {value!r}"
        )
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_duration_ms(value: Any) -> int:
    """Milliseconds from a string such as ``250ms``, ``10s``, ``5m``, ``24h``, ``7d`` (or 0)."""
    if value == 0 and not isinstance(value, bool):
        return 0
    match = _NUMBER_UNIT.match(str(value)) if not isinstance(value, bool) else None
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _DURATION_UNITS:
        raise ValueError(
            f"expected a duration with a unit (ms, s, m, h, d) such as 500ms or 7d, got {value!r}"
        )
    return int(float(match.group(1)) * _DURATION_UNITS[unit])


Size = Annotated[int, BeforeValidator(parse_size)]
Duration = Annotated[int, BeforeValidator(parse_duration_ms)]
