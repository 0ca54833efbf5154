"""``Settings``: the whole node file, one field per section (DESIGN 8)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from .base import Section
from .bus import AggregationSettings, HandlerSettings, RouteSettings, bus_declarations
from .node import NodeSettings
from .pipelines import PipelineSettings
from .server import ServerSettings
from .streams import StreamSettings
from .sync import SyncSettings, check_sync_section

__all__ = ["Settings"]


class Settings(Section):
    node: NodeSettings = NodeSettings()
    server: ServerSettings = ServerSettings()
    streams: tuple[StreamSettings, ...] = ()
    handlers: tuple[HandlerSettings, ...] = ()
    routes: tuple[RouteSettings, ...] = ()
    aggregations: tuple[AggregationSettings, ...] = ()
    pipelines: tuple[PipelineSettings, ...] = ()  # settings/pipelines.py
    sync: tuple[SyncSettings, ...] = ()  # settings/sync.py
    source: str | None = Field(None, exclude=True)

    # Routes check their handler names against this file's handlers (settings/bus.py).
    _bus_declarations = model_validator(mode="wrap")(bus_declarations)

    @field_validator("streams")
    @classmethod
    def _unique_stream_names(
        cls, streams: tuple[StreamSettings, ...]
    ) -> tuple[StreamSettings, ...]:
        names = [stream.name for stream in streams]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"stream names must be unique; repeated: {', '.join(duplicates)}")
        return streams

    _sync_section = field_validator("sync")(check_sync_section)
