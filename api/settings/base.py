"""What every settings section shares: frozen models that refuse unknown fields, and the
defaults of the packages' config objects, imported rather than typed again."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["Section", "defaults_of", "empty_is_none"]


def defaults_of(config: type) -> dict[str, Any]:
    """The field defaults of the dataclass ``config`` (a package's ``StreamConfig``,
    ``RetryPolicy``...), so a settings model states each default once, where the package does."""
    found: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        if field.default is not dataclasses.MISSING:
            found[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            found[field.name] = field.default_factory()
    return found


def empty_is_none(value: Any) -> Any:
    """``${VAR:-}`` expands to "": for optional fields that means "not set"."""
    return None if value == "" else value


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
