"""One way to say what pydantic found wrong, for the YAML file and for HTTP bodies alike.

A line per problem: ``[where: ]field.path: what was expected[, got <input>]``, e.g.
``config/kvdb.yaml:14: node.retention.max_events: Input should be a valid integer, got 'lots'``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["describe_validation_errors"]

_NO_INPUT = frozenset({"missing", "value_error", "json_invalid"})  # the input says nothing more
_MAX_INPUT = 80  # characters of the offending input quoted back


def describe_validation_errors(
    errors: Iterable[Mapping[str, Any]],
    *,
    where: Callable[[tuple[Any, ...]], str] | None = None,
    whole: str = "(top level)",
    unknown_field: str = "unknown field",
) -> list[str]:
    """The problems in pydantic's ``errors()`` (a ``ValidationError``'s or FastAPI's
    ``RequestValidationError``'s). ``where(loc)`` prefixes a line with its origin (file and
    line); ``whole`` names an empty path; ``unknown_field`` is said of a field the model does
    not have."""
    problems = []
    for error in errors:
        loc = tuple(part for part in error["loc"] if not str(part).startswith("function-"))
        path = ".".join(str(part) for part in loc) or whole
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = unknown_field
        elif "input" in error and error["type"] not in _NO_INPUT:
            shown = repr(error["input"])
            if len(shown) > _MAX_INPUT:
                shown = shown[: _MAX_INPUT - 3] + "..."
            message = f"{message}, got {shown}"
        prefix = f"{where(loc)}: " if where is not None else ""
        problems.append(f"{prefix}{path}: {message}")
    return problems
