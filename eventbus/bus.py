"""``EventBus``: routes committed change events to handlers, each at its own pace.

The bus owns a durable system stream (``_bus``) over the whole change log and attaches one
consumer per handler, so every handler has its own cursor (its queue), task and checkpoint:
delivery is at-least-once and in seq order per handler, survives restarts, and a slow or
failing handler holds back nobody else, writers included. Routes are shared: a ``Router``
matches each event once for all handlers (see ``routes.py`` for priority). Failures are
retried with backoff and then dead-lettered (``runner.py``, ``dead_letters.py``).

Changes to handlers and routes are validated whole before anything is applied, and made one
at a time under the bus's lock. See ``catalog.py`` for which definitions are stored, and
``declare.py`` for what a configuration file declares and what becomes of what it drops
(orphans: kept, listed, but delivering and routing nothing).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random

from changestream import (
    ChangeStream,
    ChangeStreamManager,
    Clock,
    Orphan,
    Ownership,
    OwnershipConflict,
    StreamConfig,
)
from changestream.consumer import checkpoint_key
from kvdb import Store

from .aggregator import CONSUMER as AGGREGATOR_CONSUMER
from .aggregator import EventAggregator, build_aggregator, forget_aggregates
from .catalog import Catalog
from .config import BusConfig
from .dead_letters import DeadLetter, DeadLetterStore
from .declare import BusDeclaration, declare_bus
from .errors import (
    BusNotStarted,
    HandlerExists,
    HandlerInUse,
    InvalidHandler,
    InvalidRoute,
    RouteExists,
    UnknownDeadLetter,
    UnknownHandler,
    UnknownRoute,
)
from .handlers import EventHandler
from .inspection import BusInspection
from .orphans import (
    OrphanedDefinitions,
    remove_orphaned_aggregation,
    warn_about_leftover_checkpoints,
)
from .redrive import RedriveOutcome, redrive, redrive_all
from .replayer import EventReplayer, ReplayRequest, ReplayResult
from .routes import EventRoute, Router, RouteTable
from .runner import Commit, HandlerRunner, Selector, acknowledge
from .setup import BusSetup, check_handler, check_route_handlers, plan
from .specs import HandlerSpec

__all__ = ["BusSetup", "EventBus", "RedriveOutcome"]

log = logging.getLogger("eventbus.bus")


class EventBus(BusInspection):
    def __init__(
        self,
        store: Store,
        streams: ChangeStreamManager,
        config: BusConfig | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.streams = streams
        self.config = config or BusConfig()
        self.clock: Clock = clock or streams.clock
        self._rng = rng or random.Random()
        self.router = Router()
        self.dead_letters = DeadLetterStore(store)
        self.replayer = EventReplayer(store, lambda: self._runners, self.route, self.router)
        self.aggregator: EventAggregator | None = None
        self._catalog = Catalog(store)
        self._stream: ChangeStream | None = None  # made when the first consumer attaches
        self._started = False
        self._handlers: dict[str, EventHandler] = {}
        self._sources: dict[str, str] = {}  # handler -> "config" | "stored" | "code"
        self._routes: dict[str, EventRoute] = {}
        self._stored_routes: set[str] = set()
        self._ownership: dict[str, Ownership] = {}  # "handler/<name>", "route/<name>"
        self.orphaned = OrphanedDefinitions(store, self.config.stream)
        self._runners: dict[str, HandlerRunner] = {}
        self._aggregator_runner: HandlerRunner | None = None
        self._lock = asyncio.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._started

    async def declare(
        self, setup: BusSetup, *, owner: str, prune: bool = False, dry_run: bool = False
    ) -> BusDeclaration:
        """Apply ``owner``'s declaration (handler specs, routes, aggregations) to the stored
        definitions, under the rule of ``changestream/declare.py``: before ``start``, so that
        nothing runs under a definition the owner changed or dropped. Checked whole first;
        ``dry_run`` only checks."""
        if self._started and not dry_run:
            raise RuntimeError("declare() applies before start(): stop the bus first")
        return await declare_bus(
            self.store, self.config.stream, setup, owner=owner, prune=prune, dry_run=dry_run
        )

    async def start(self, setup: BusSetup | None = None) -> None:
        """Register ``setup`` (a program's handlers, routes and aggregations, not stored),
        restore the stored definitions, and start every handler from its checkpoint (or from
        now, for a new one); orphans are kept aside. Everything is checked before anything
        starts; on any failure nothing is left running. A bus with nothing to deliver to
        writes nothing: its system stream is made when the first handler attaches."""
        if self._started:
            return
        setup = setup or BusSetup()
        planned = plan(setup, self._catalog)
        table = RouteTable(planned.routes.values())
        aggregator = build_aggregator(self.store, setup.aggregations, self.clock)
        self._started = True
        self._handlers, self._sources = planned.handlers, planned.sources
        self._routes, self._stored_routes = planned.routes, planned.stored_routes
        self._ownership = planned.ownership
        self.orphaned.load(planned.orphaned_handlers, planned.orphaned_routes)
        self.router.replace(table)
        try:
            for kind, names, delete in (
                ("handler", planned.shadowed_handlers, self._catalog.delete_handler),
                ("route", planned.shadowed_routes, self._catalog.delete_route),
            ):
                for name in names:
                    log.warning("%s %r is registered by the program, which replaces its "
                                "stored definition", kind, name)  # fmt: skip
                    await delete(name)
            self.dead_letters.load()
            for handler in self._handlers.values():
                await handler.start()
            for handler in self._handlers.values():
                self._runners[handler.name] = await self._attach(handler)
            await self._start_aggregator(aggregator)
        except BaseException:
            await self.stop()
            raise
        known = {*self._handlers, *self.orphaned.handlers(), AGGREGATOR_CONSUMER}
        warn_about_leftover_checkpoints(self.store, self.config.stream, known)

    async def stop(self) -> None:
        """Stop every handler (writing its checkpoint) and close it. Idempotent."""
        if not self._started:
            return
        self._started = False
        runners = list(self._runners.values())
        if self._aggregator_runner is not None:
            runners.append(self._aggregator_runner)
        for runner in runners:
            await runner.stop()
            self._detach(runner.name)
        for handler in self._handlers.values():
            await _close(handler)
        self._runners.clear()
        self._aggregator_runner = self.aggregator = None
        self._handlers, self._sources, self._routes = {}, {}, {}
        self._stored_routes = set()
        self._ownership = {}
        self.orphaned.clear()
        self.router.replace(RouteTable())

    def _stream_config(self) -> StreamConfig:
        config = self.config
        return StreamConfig(
            config.stream,
            buffer_size=config.buffer_size,
            batch_size=config.batch_size,
            batch_timeout_ms=0,
            enable_persistence=True,
            start_from="latest",
        )

    async def _attach(
        self,
        handler: EventHandler,
        *,
        select: Selector | None = None,
        commit: Commit | None = None,
    ) -> HandlerRunner:
        if self._stream is None:
            self._stream = await self.streams.upsert(self._stream_config())
        consumer = await self._stream.attach(handler.name)
        runner = HandlerRunner(
            handler,
            consumer,
            select=select or functools.partial(self.router.select, handler.name),
            store=self.store,
            clock=self.clock,
            config=self.config,
            dead_letters=self.dead_letters,
            rng=self._rng,
            commit=commit or acknowledge,
        )
        runner.start()
        return runner

    async def _start_aggregator(self, aggregator: EventAggregator | None) -> None:
        key = checkpoint_key(self.config.stream, AGGREGATOR_CONSUMER)
        if aggregator is None:
            if self.store.get_checkpoint(key) is not None:
                await self.store.delete_checkpoint(key)
            await forget_aggregates(self.store)
            return
        await aggregator.load(self.store)
        self.aggregator = aggregator
        if aggregator.counting:  # else only orphans: the checkpoint stays where it stopped
            runner = await self._attach(
                aggregator, select=aggregator.select, commit=aggregator.commit
            )
            self._aggregator_runner = runner

    # -- handlers -----------------------------------------------------------------------------

    def handler(self, name: str) -> EventHandler:
        try:
            return self._handlers[name]
        except KeyError:
            raise UnknownHandler(name) from None

    def handlers(self) -> list[EventHandler]:
        return [self._handlers[name] for name in sorted(self._handlers)]

    async def add_handler(
        self, handler: HandlerSpec | EventHandler, *, persist: bool = False
    ) -> EventHandler:
        """Start a new handler, from now on (or from its checkpoint, if it had one). With
        ``persist`` (a ``HandlerSpec`` only) its definition is stored and restored at start."""
        async with self._lock:
            name = handler.name
            self.orphaned.check_free("handler", name)
            if name in self._handlers:
                raise HandlerExists(name)
            return await self._install(handler, persist=persist)

    async def put_handler(
        self, handler: HandlerSpec | EventHandler, *, persist: bool = False
    ) -> tuple[EventHandler, bool]:
        """Add the handler, or replace the one of that name: the new one continues from the old
        one's checkpoint, so no event is skipped. Returns the handler and whether it is new."""
        async with self._lock:
            self.orphaned.check_free("handler", handler.name)
            self._check_not_declared("handler", handler.name)
            old = self._handlers.get(handler.name)
            if old is None:
                return await self._install(handler, persist=persist), True
            if not persist:
                stored = [r for r in self._handler_routes(handler.name) if r in self._stored_routes]
                if stored and self._sources[handler.name] == "stored":
                    raise InvalidHandler(_must_store(handler.name, stored))
            return await self._install(handler, persist=persist, replacing=old), False

    async def _install(
        self,
        item: HandlerSpec | EventHandler,
        *,
        persist: bool,
        replacing: EventHandler | None = None,
    ) -> EventHandler:
        self._require_started()
        if persist and not isinstance(item, HandlerSpec):
            raise InvalidHandler(
                f"handler {item.name!r} is made of code and cannot be stored; register it "
                "again after each start, or describe it as a HandlerSpec (webhook, log, python)"
            )
        handler = item.build() if isinstance(item, HandlerSpec) else check_handler(item)
        await handler.start()  # fails here, before anything changed
        name = handler.name
        try:
            if replacing is not None:
                runner = self._runners.pop(name)
                await runner.stop()
                self._detach(name)
                await _close(replacing)
            self._runners[name] = await self._attach(handler)
        except BaseException:
            await _close(handler)
            raise
        self._handlers[name] = handler
        if persist:
            assert isinstance(item, HandlerSpec)
            await self._catalog.put_handler(item)
            self._sources[name] = "stored"
        else:
            if self._sources.get(name) == "stored":
                await self._catalog.delete_handler(name)
            self._sources[name] = "config" if isinstance(item, HandlerSpec) else "code"
        return handler

    async def remove_handler(self, name: str) -> None:
        """Stop the handler and forget it, its stored definition and its checkpoint (releasing
        the change-log retention it held). Its dead letters stay until purged. A name with
        only a leftover checkpoint (see the start-up warning) has that checkpoint removed."""
        async with self._lock:
            self._require_started()
            key = checkpoint_key(self.config.stream, name)
            if ("handler", name) in self.orphaned:
                routes = self._handler_routes(name)
                if routes:
                    raise HandlerInUse(name, routes)
                await self.orphaned.remove("handler", name, self._catalog)
                return
            if name not in self._handlers:
                if name == AGGREGATOR_CONSUMER or self.store.get_checkpoint(key) is None:
                    raise UnknownHandler(name)
                await self.store.delete_checkpoint(key)
                return
            routes = self._handler_routes(name)
            if routes:
                raise HandlerInUse(name, routes)
            runner = self._runners.pop(name)
            await runner.stop()
            self._detach(name)
            await self.store.delete_checkpoint(key)
            await _close(self._handlers.pop(name))
            if self._sources.pop(name) in ("stored", "config"):
                await self._catalog.delete_handler(name)
            self._ownership.pop(f"handler/{name}", None)

    def _detach(self, name: str) -> None:
        if self._stream is not None:
            self._stream.detach(name)

    def _handler_routes(self, name: str) -> list[str]:
        """The routes naming handler ``name``, orphaned ones included."""
        routes = [r.name for r in self._routes.values() if name in r.handler_names]
        return sorted(routes + self.orphaned.routes_naming(name))

    def source(self, name: str) -> str:
        """Where handler ``name`` comes from: ``config`` (a spec declared by the configuration
        file, or registered by a program at every start), ``stored`` (made through the API)
        or ``code`` (an object of the program's)."""
        if ("handler", name) in self.orphaned:
            return "config"
        self.handler(name)
        return self._sources[name]

    def ownership(self, kind: str, name: str) -> Ownership:
        """Who made the handler or route (``kind``) ``name``: see ``changestream.Ownership``."""
        orphaned = self.orphaned.ownership(kind, name)
        return orphaned or self._ownership.get(f"{kind}/{name}", Ownership())

    def orphans(self) -> tuple[Orphan, ...]:
        """What is orphaned, and the checkpoints with which it still pins retention."""
        return self.orphaned.report(self.aggregator)

    def _check_not_declared(self, kind: str, name: str) -> None:
        owner = self._ownership.get(f"{kind}/{name}", Ownership()).owner
        if owner is not None:
            raise OwnershipConflict.not_the_api(kind, name, owner)

    # -- routes -------------------------------------------------------------------------------

    def route(self, name: str) -> EventRoute:
        try:
            return self._routes[name]
        except KeyError:
            raise UnknownRoute(name) from None

    def routes(self) -> list[EventRoute]:
        """Every route, in the order they are consulted (highest priority first)."""
        return list(self.router.table.routes)

    def route_is_stored(self, name: str) -> bool:
        return name in self._stored_routes

    async def add_route(self, route: EventRoute, *, persist: bool = False) -> None:
        async with self._lock:
            self.orphaned.check_free("route", route.name)
            if route.name in self._routes:
                raise RouteExists(route.name)
            await self._set_route(route, persist)

    async def put_route(self, route: EventRoute, *, persist: bool = False) -> bool:
        """Add the route or replace the one of that name; returns whether it is new."""
        async with self._lock:
            self.orphaned.check_free("route", route.name)
            self._check_not_declared("route", route.name)
            created = route.name not in self._routes
            await self._set_route(route, persist)
            return created

    async def _set_route(self, route: EventRoute, persist: bool) -> None:
        self._require_started()
        check_route_handlers(route, [*self._handlers, *self.orphaned.handlers()])
        if persist:
            code = [n for n in route.handler_names if self._sources.get(n) == "code"]
            if code:
                raise InvalidRoute(
                    f"route {route.name!r} would be stored and restored at start, but handler(s) "
                    f"{', '.join(code)} are made of code and not known then; add the route from "
                    "code as well (without persist)"
                )
        table = RouteTable([*(r for n, r in self._routes.items() if n != route.name), route])
        if persist:
            await self._catalog.put_route(route)
            self._stored_routes.add(route.name)
        elif route.name in self._stored_routes:
            await self._catalog.delete_route(route.name)
            self._stored_routes.discard(route.name)
        self._routes[route.name] = route
        self.router.replace(table)

    async def remove_route(self, name: str) -> None:
        async with self._lock:
            if ("route", name) in self.orphaned:
                await self.orphaned.remove("route", name, self._catalog)
                return
            self.route(name)
            table = RouteTable(r for n, r in self._routes.items() if n != name)
            if name in self._stored_routes:
                await self._catalog.delete_route(name)
                self._stored_routes.discard(name)
            del self._routes[name]
            self._ownership.pop(f"route/{name}", None)
            self.router.replace(table)

    async def remove_aggregation(self, name: str) -> None:
        """Remove an orphaned aggregation and its windows (``orphans.py``)."""
        async with self._lock:
            stream = self.config.stream
            self.aggregator = await remove_orphaned_aggregation(
                self.store, stream, self.aggregator, name
            )

    # -- dead letters, replay, stats ----------------------------------------------------------

    async def redrive(self, handler: str, seq: int) -> RedriveOutcome:
        """Deliver a dead letter to its handler again, once (see ``redrive.py``)."""
        return await redrive(self.dead_letters, self._runners, self.clock, handler, seq)

    async def redrive_all(
        self, handler: str | None = None, *, limit: int = 1000
    ) -> list[RedriveOutcome]:
        """Re-drive up to ``limit`` dead letters (of ``handler``), oldest first."""
        if handler is not None:
            self.handler(handler)
        return await redrive_all(self.dead_letters, self._runners, self.clock, handler, limit)

    async def replay(self, request: ReplayRequest) -> ReplayResult:
        return await self.replayer.replay(request)

    def dead_letter(self, handler: str, seq: int) -> DeadLetter:
        letter = self.dead_letters.get(handler, seq)
        if letter is None:
            raise UnknownDeadLetter(handler, seq)
        return letter

    def _require_started(self) -> None:
        if not self._started:
            raise BusNotStarted


def _must_store(name: str, routes: list[str]) -> str:
    return (
        f"stored route(s) {', '.join(routes)} name handler {name!r}, so it must stay stored: "
        "replace it with persist=True (PUT /bus/handlers does)"
    )


async def _close(handler: EventHandler) -> None:
    try:
        await handler.close()
    except Exception:
        log.exception("handler %s failed to close", handler.name)
