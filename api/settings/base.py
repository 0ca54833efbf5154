"""What every settings section shares: frozen models that refuse unknown fields."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["Section", "empty_is_none"]


def empty_is_none(value: Any) -> Any:
    """``${VAR:-}`` expands to "": for optional fields that means "not set"."""
    return None if value == "" else value


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
