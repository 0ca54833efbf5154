"""``Settings``: the whole node file, one field per section (DESIGN 8)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, PrivateAttr, field_validator, model_validator

from .base import Section
from .bus import AggregationSettings, HandlerSettings, RouteSettings, bus_declarations
from .node import NodeSettings
from .pipelines import PipelineSettings
from .server import ServerSettings
from .streams import StreamSettings
from .sync import SyncSettings, check_sync_section

__all__ = ["CONFIG_OWNER", "DEFAULTS_SOURCE", "Settings"]

CONFIG_OWNER = "config"  # who owns what the node's configuration file declares
DEFAULTS_SOURCE = "<defaults>"  # the source of settings loaded without a file


class Settings(Section):
    """The node's settings. ``streams``, ``handlers``, ``routes``, ``aggregations`` and
    ``pipelines`` are *declarations* (``changestream/declare.py``): what the file declares is
    created or updated at start, what it declared before and no longer does is orphaned
    (stopped and kept) until deleted, or removed at start with ``prune: true``."""

    node: NodeSettings = NodeSettings()
    server: ServerSettings = ServerSettings()
    streams: tuple[StreamSettings, ...] = ()
    handlers: tuple[HandlerSettings, ...] = ()
    routes: tuple[RouteSettings, ...] = ()
    aggregations: tuple[AggregationSettings, ...] = ()
    pipelines: tuple[PipelineSettings, ...] = ()  # settings/pipelines.py
    sync: tuple[SyncSettings, ...] = ()  # settings/sync.py
    prune: bool = False  # remove, at start, what the file no longer declares
    source: str | None = Field(None, exclude=True)
    _lines: dict[tuple[Any, ...], int] = PrivateAttr(default_factory=dict)  # set by the loader

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

    @property
    def declares(self) -> bool:
        """Whether these settings are a declaration: loaded from a file (even one declaring
        nothing: what it declared before is then orphaned), or given declarative sections by
        a program. A node started with neither (``kvdb serve`` without ``--config``) declares
        nothing and changes nothing: what a file declared before keeps running."""
        if self.source is not None and self.source != DEFAULTS_SOURCE:
            return True
        sections = (
            self.streams,
            self.handlers,
            self.routes,
            self.aggregations,
            self.pipelines,
            self.sync,
        )
        return any(sections) or self.prune

    def where(self, *path: Any) -> str:
        """``file:line: field.path`` for an entry of these settings, for error messages."""
        source = self.source or "settings"
        line = self._lines.get(tuple(path))
        return f"{source}{f':{line}' if line else ''}: {'.'.join(str(p) for p in path)}"

    def locate(self, kind: str, name: str) -> str:
        """``file:line: field.path`` of the entry declaring the ``kind`` (``stream``,
        ``handler``, ``route``, ``aggregation``) named ``name``."""
        sections: dict[str, tuple[Any, ...]] = {
            "stream": self.streams,
            "handler": self.handlers,
            "route": self.routes,
            "aggregation": self.aggregations,
            "sync processor": self.sync,
        }
        section = "sync" if kind == "sync processor" else f"{kind}s"
        entries = sections.get(kind, ())
        index = next((i for i, entry in enumerate(entries) if entry.name == name), None)
        if index is None:
            return self.where(section)
        return self.where(section, index, "name")
