"""``Node``: the composition root. It builds every part of a node from settings, in the
dependency order of the packages, and tears them down in reverse.

A program can embed kvdb without HTTP::

    async with Node(Settings(node=NodeSettings(data_dir="my-data"))) as node:
        await node.store.put("greeting", b"hello")

When the settings come from a file, the node *declares* its streams, handlers, routes,
aggregations and pipelines (``changestream/declare.py``), each package before its consumers
start; settings without a file declare nothing and change nothing. Either way the node then
logs a warning for each orphan, saying what it still pins.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar, cast

from changestream import (
    ChangeStreamManager,
    Clock,
    Orphan,
    OwnershipConflict,
    warn_about_orphans,
)
from compute import StreamComputingEngine
from eventbus import EventBus, EventBusError
from kvdb import Store
from kvdb.hlc import wall_clock_ms
from sync import SyncError, SyncService

from .errors import ConfigError, NodeNotStarted
from .settings import Settings
from .settings.bus import bus_setup
from .settings.pipelines import DeclaredPipelines, rebuild_pipeline
from .settings.root import CONFIG_OWNER

__all__ = ["Node"]

log = logging.getLogger("kvdb.node")
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
        replication, each with what the settings declare. Declarations are all checked before
        any applies. If a part fails to start, the ones before it stop."""
        if self._store is not None:
            return
        settings = self.settings
        async with contextlib.AsyncExitStack() as stack:
            store = Store(settings.node.store_config(), clock=self._clock)
            stack.callback(store.close)
            streams = ChangeStreamManager(store, clock=self._stream_clock)
            await streams.start()
            stack.push_async_callback(streams.stop)
            bus = EventBus(store, streams)
            compute = StreamComputingEngine(store, streams, rebuild=rebuild_pipeline)
            skew = settings.node.max_clock_skew
            sync = SyncService(store, streams, clock=self._stream_clock, max_clock_skew_ms=skew)
            declaration = (
                _Declaration(settings, streams, bus, compute, sync) if settings.declares else None
            )
            if declaration is not None:
                await declaration.apply(dry_run=True)  # a conflict anywhere changes nothing
                await declaration.streams()
            await self._start_bus(bus, declaration)
            stack.push_async_callback(bus.stop)
            stack.push_async_callback(compute.stop)
            await compute.start()
            if declaration is not None:
                await declaration.pipelines()
                await declaration.sync()
            stack.push_async_callback(sync.stop)
            await sync.start()
            self._store, self._streams, self._bus, self._compute = store, streams, bus, compute
            self._sync = sync
            warn_about_orphans(self.orphans(), log)
            self._running = stack.pop_all()  # stop() unwinds it: sync ... streams, store

    def orphans(self) -> list[Orphan]:
        """What the configuration file declared and no longer does, kept until deleted or
        pruned, with the checkpoints by which each still holds back change-log retention."""
        return [
            *self.streams.orphans(),
            *self.bus.orphans(),
            *self.compute.orphans(),
            *self.sync.orphans(),
        ]

    async def _start_bus(self, bus: EventBus, declaration: _Declaration | None) -> None:
        """Apply the bus's declaration (before it starts), then start it."""
        try:
            if declaration is not None:
                await declaration.bus()
            await bus.start()
        except EventBusError as exc:
            where = self.settings.source or "settings"
            raise ConfigError(f"{where}: event bus: {exc.message}") from exc

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


class _Declaration:
    """What the settings declare, for each package, under the owner ``config``. A name the
    API made is a configuration error naming the file, line and field of the entry."""

    def __init__(
        self,
        settings: Settings,
        streams: ChangeStreamManager,
        bus: EventBus,
        compute: StreamComputingEngine,
        sync: SyncService,
    ) -> None:
        self.settings = settings
        self._sync = sync
        self._sync_configs = [entry.sync_config() for entry in settings.sync]
        self._streams = streams
        self._bus = bus
        self._compute = compute
        self._stream_configs = [stream.stream_config() for stream in settings.streams]
        self._bus_setup = bus_setup(settings.handlers, settings.routes, settings.aggregations)
        self._pipelines = DeclaredPipelines(settings.pipelines, settings.where)

    async def apply(self, *, dry_run: bool = False) -> None:
        await self.streams(dry_run=dry_run)
        await self.bus(dry_run=dry_run)
        await self.pipelines(dry_run=dry_run)
        await self.sync(dry_run=dry_run)

    async def streams(self, *, dry_run: bool = False) -> None:
        prune = self.settings.prune
        await self._located(
            self._streams.declare(
                self._stream_configs, owner=CONFIG_OWNER, prune=prune, dry_run=dry_run
            )
        )

    async def bus(self, *, dry_run: bool = False) -> None:
        prune = self.settings.prune
        await self._located(
            self._bus.declare(self._bus_setup, owner=CONFIG_OWNER, prune=prune, dry_run=dry_run)
        )

    async def pipelines(self, *, dry_run: bool = False) -> None:
        prune = self.settings.prune
        await self._pipelines.declare(
            self._compute, owner=CONFIG_OWNER, prune=prune, dry_run=dry_run
        )

    async def sync(self, *, dry_run: bool = False) -> None:
        prune = self.settings.prune
        declaring = self._sync.declare(
            self._sync_configs, owner=CONFIG_OWNER, prune=prune, dry_run=dry_run
        )
        try:
            await self._located(declaring)
        except SyncError as exc:
            raise ConfigError(f"{self.settings.where('sync')}: {exc.message}") from exc

    async def _located(self, declaring: Awaitable[object]) -> None:
        try:
            await declaring
        except OwnershipConflict as exc:
            where = self.settings.locate(exc.kind, exc.name)
            raise ConfigError(f"{where}: {exc.message}") from exc
        except EventBusError as exc:
            raise ConfigError(f"{self.settings.source}: event bus: {exc.message}") from exc
