"""``Node``: the composition root. It builds every part of a node from settings, in the
dependency order of the packages, and tears them down in reverse.

A program can embed kvdb without HTTP::

    async with Node(Settings(node=NodeSettings(data_dir="my-data"))) as node:
        await node.store.put("greeting", b"hello")
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar, cast

from changestream import ChangeStreamManager, Clock
from compute import StreamComputingEngine
from eventbus import EventBus, EventBusError
from kvdb import Store
from kvdb.hlc import wall_clock_ms
from sync import SyncService

from .errors import ConfigError, NodeNotStarted
from .settings import Settings
from .settings.bus import bus_setup
from .settings.pipelines import start_pipelines
from .settings.sync import start_sync

__all__ = ["Node"]

_T = TypeVar("_T")


class _Part(Generic[_T]):
    """A part of a node (``store``, ``streams``...), there while the node runs: reading it
    before ``start()`` or after ``stop()`` raises ``NodeNotStarted``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._attribute = f"_{name}"

    def __get__(self, node: object, owner: type | None = None) -> _T:
        part = getattr(node, self._attribute)
        if part is None:
            raise NodeNotStarted
        return cast(_T, part)


class Node:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        stream_clock: Clock | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._clock = clock
        self._stream_clock = stream_clock
        self._store: Store | None = None
        self._streams: ChangeStreamManager | None = None
        self._bus: EventBus | None = None
        self._compute: StreamComputingEngine | None = None
        self._sync: SyncService | None = None
        self._running: contextlib.AsyncExitStack | None = None

    store = _Part[Store]()
    streams = _Part[ChangeStreamManager]()
    bus = _Part[EventBus]()
    compute = _Part[StreamComputingEngine]()  # pipelines (Python and SQL) and their results
    sync = _Part[SyncService]()  # replication: sync processors, the receiving end, conflicts

    @property
    def started(self) -> bool:
        return self._store is not None

    async def start(self) -> None:
        """Open the store, then change streams, the event bus, stream computing and
        replication, each with what the settings configure. If a part fails to start, the
        ones before it stop."""
        if self._store is not None:
            return
        settings = self.settings
        async with contextlib.AsyncExitStack() as stack:
            store = Store(settings.node.store_config(), clock=self._clock)
            stack.callback(store.close)
            streams = ChangeStreamManager(store, clock=self._stream_clock)
            await streams.start()
            stack.push_async_callback(streams.stop)
            await streams.declare([stream.stream_config() for stream in settings.streams])
            bus = await self._start_bus(store, streams)
            stack.push_async_callback(bus.stop)
            compute = StreamComputingEngine(store, streams)
            stack.push_async_callback(compute.stop)
            await compute.start()
            await start_pipelines(compute, settings.pipelines, settings.source)
            skew = settings.node.max_clock_skew
            sync = SyncService(store, streams, clock=self._stream_clock, max_clock_skew_ms=skew)
            stack.push_async_callback(sync.stop)
            await sync.start()
            await start_sync(sync, settings.sync, settings.source)
            self._store, self._streams, self._bus, self._compute = store, streams, bus, compute
            self._sync = sync
            self._running = stack.pop_all()  # stop() unwinds it: sync, compute, bus, streams, store

    async def _start_bus(self, store: Store, streams: ChangeStreamManager) -> EventBus:
        """The event bus with the handlers, routes and aggregations of the settings."""
        settings = self.settings
        bus = EventBus(store, streams)
        try:
            await bus.start(bus_setup(settings.handlers, settings.routes, settings.aggregations))
        except EventBusError as exc:
            where = settings.source or "settings"
            raise ConfigError(f"{where}: event bus: {exc.message}") from exc
        return bus

    async def stop(self) -> None:
        """Stop in reverse order of start; idempotent."""
        running, self._running = self._running, None
        self._store = self._streams = self._bus = self._compute = self._sync = None
        if running is not None:
            await running.aclose()

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
