"""The ``streams:`` section: named change streams declared by the file."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from changestream import ChangeStreamError, StreamConfig

from .base import Section, defaults_of

__all__ = ["StreamSettings"]

_DEFAULT = defaults_of(StreamConfig)


class StreamSettings(Section):
    """One entry of ``streams:``; the names are those of ``changestream.StreamConfig``."""

    name: str
    event_types: tuple[str, ...] = ()
    key_patterns: tuple[str, ...] = ()
    buffer_size: int = Field(_DEFAULT["buffer_size"], ge=1)
    batch_size: int = Field(_DEFAULT["batch_size"], ge=1)
    batch_timeout_ms: int = Field(_DEFAULT["batch_timeout_ms"], ge=0)
    enable_persistence: bool = _DEFAULT["enable_persistence"]
    start_from: Literal["latest", "earliest"] | Annotated[int, Field(ge=1)] = _DEFAULT["start_from"]
    on_overflow: Literal["catch_up", "disconnect"] = _DEFAULT["on_overflow"].value
    origins: tuple[str, ...] = ()  # local, remote or node ids (empty: every origin)

    @model_validator(mode="after")
    def _valid_stream(self) -> StreamSettings:
        self.stream_config()  # pattern syntax, type names, sizes: reported with the field path
        return self

    def stream_config(self) -> StreamConfig:
        try:
            return StreamConfig.from_dict(self.model_dump())
        except ChangeStreamError as exc:
            raise ValueError(exc.message) from None
