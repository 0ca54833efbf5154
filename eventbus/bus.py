"""``EventBus``: routes committed change events to handlers, each at its own pace.

The bus owns a durable system stream (``_bus``) over the whole change log and attaches one
consumer per handler, so every handler has its own cursor (its queue), task and checkpoint:
delivery is at-least-once and in seq order per handler, survives restarts, and a slow or
failing handler holds back nobody else, writers included. Routes are shared: a ``Router``
matches each event once for all handlers (see ``routes.py`` for priority). Failures are
retried with backoff and then dead-lettered (``runner.py``, ``dead_letters.py``).

Changes to handlers and routes are validated whole before anything is applied, and made one
at a time under the bus's lock. See ``catalog.py`` for which definitions are stored.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from dataclasses import dataclass
from typing import Any

from changestream import ChangeStream, ChangeStreamManager, Clock, StreamConfig
from changestream.consumer import checkpoint_key
from kvdb import Store
from kvdb.stats import Histogram

from .aggregator import CONSUMER as AGGREGATOR_CONSUMER
from .aggregator import EventAggregator, forget_aggregates
from .catalog import Catalog
from .config import BusConfig
from .dead_letters import DeadLetter, DeadLetterStore, describe_error
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
from .replayer import EventReplayer, ReplayRequest, ReplayResult
from .routes import EventRoute, Router, RouteTable
from .runner import Commit, HandlerRunner, Selector, acknowledge
from .setup import BusSetup, check_handler, check_route_handlers, plan
from .specs import HandlerSpec
from .stats import HandlerStats

__all__ = ["BusSetup", "EventBus", "RedriveOutcome"]

log = logging.getLogger("eventbus.bus")


@dataclass(frozen=True)
class RedriveOutcome:
    id: str
    redriven: bool
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "redriven": self.redriven, "error": self.error}


class EventBus:
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
        self.replayer = EventReplayer(store, lambda: self._runners, self.route)
        self.aggregator: EventAggregator | None = None
        self._catalog = Catalog(store)
        self._stream: ChangeStream | None = None  # made when the first consumer attaches
        self._started = False
        self._handlers: dict[str, EventHandler] = {}
        self._sources: dict[str, str] = {}  # handler -> "config" | "stored" | "code"
        self._routes: dict[str, EventRoute] = {}
        self._stored_routes: set[str] = set()
        self._runners: dict[str, HandlerRunner] = {}
        self._aggregator_runner: HandlerRunner | None = None
        self._lock = asyncio.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._started

    async def start(self, setup: BusSetup | None = None) -> None:
        """Declare ``setup``, restore stored definitions, and start every handler from its
        checkpoint (or from now, for a new one). Everything is checked before anything
        starts; on any failure nothing is left running. A bus with nothing to deliver to
        writes nothing: its system stream is made when the first handler attaches."""
        if self._started:
            return
        setup = setup or BusSetup()
        planned = plan(setup, self._catalog)
        table = RouteTable(planned.routes.values())
        aggregator = EventAggregator(setup.aggregations, self.clock) if setup.aggregations else None
        self._started = True
        self._handlers, self._sources = planned.handlers, planned.sources
        self._routes, self._stored_routes = planned.routes, planned.stored_routes
        self.router.replace(table)
        try:
            for name in planned.shadowed_handlers:
                log.warning("handler %r is declared at start, which replaces its stored "
                            "definition", name)  # fmt: skip
                await self._catalog.delete_handler(name)
            for name in planned.shadowed_routes:
                log.warning("route %r is declared at start, which replaces its stored "
                            "definition", name)  # fmt: skip
                await self._catalog.delete_route(name)
            self.dead_letters.load()
            for handler in self._handlers.values():
                await handler.start()
            for handler in self._handlers.values():
                self._runners[handler.name] = await self._attach(handler)
            await self._start_aggregator(aggregator)
        except BaseException:
            await self.stop()
            raise
        self._warn_about_orphans()

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
        runner = await self._attach(aggregator, select=aggregator.select, commit=aggregator.commit)
        self._aggregator_runner = runner

    def _warn_about_orphans(self) -> None:
        prefix = checkpoint_key(self.config.stream, "")
        known = {*self._handlers, AGGREGATOR_CONSUMER}
        orphans = sorted(
            cp.name[len(prefix) :]
            for cp in self.store.list_checkpoints()
            if cp.name.startswith(prefix) and cp.name[len(prefix) :] not in known
        )
        if orphans:
            log.warning(
                "checkpoints of handler(s) %s hold change-log retention but no such handler is "
                "defined; unless the program adds them from code, release them with "
                "DELETE /bus/handlers/<name>",
                ", ".join(orphans),
            )

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
            if name in self._handlers:
                raise HandlerExists(name)
            return await self._install(handler, persist=persist)

    async def put_handler(
        self, handler: HandlerSpec | EventHandler, *, persist: bool = False
    ) -> tuple[EventHandler, bool]:
        """Add the handler, or replace the one of that name: the new one continues from the old
        one's checkpoint, so no event is skipped. Returns the handler and whether it is new."""
        async with self._lock:
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
            if self._sources.pop(name) == "stored":
                await self._catalog.delete_handler(name)

    def _detach(self, name: str) -> None:
        if self._stream is not None:
            self._stream.detach(name)

    def _handler_routes(self, name: str) -> list[str]:
        return sorted(r.name for r in self._routes.values() if name in r.handler_names)

    def source(self, name: str) -> str:
        """Where handler ``name`` comes from: ``config``, ``stored`` or ``code``."""
        self.handler(name)
        return self._sources[name]

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
            if route.name in self._routes:
                raise RouteExists(route.name)
            await self._set_route(route, persist)

    async def put_route(self, route: EventRoute, *, persist: bool = False) -> bool:
        """Add the route or replace the one of that name; returns whether it is new."""
        async with self._lock:
            created = route.name not in self._routes
            await self._set_route(route, persist)
            return created

    async def _set_route(self, route: EventRoute, persist: bool) -> None:
        self._require_started()
        check_route_handlers(route, self._handlers)
        if persist:
            code = [n for n in route.handler_names if self._sources[n] == "code"]
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
            self.route(name)
            table = RouteTable(r for n, r in self._routes.items() if n != name)
            if name in self._stored_routes:
                await self._catalog.delete_route(name)
                self._stored_routes.discard(name)
            del self._routes[name]
            self.router.replace(table)

    # -- dead letters, replay, stats ----------------------------------------------------------

    async def redrive(self, handler: str, seq: int) -> RedriveOutcome:
        """Deliver a dead letter to its handler again, once: handled, it is removed; failed,
        it stays with the new error and one more attempt."""
        letter = self.dead_letters.get(handler, seq)
        if letter is None:
            raise UnknownDeadLetter(handler, seq)
        runner = self._runners.get(handler)
        if runner is None:
            raise UnknownHandler(handler)
        error = await runner.deliver_once(letter.events)
        if error is None:
            await self.dead_letters.delete(handler, seq)
            return RedriveOutcome(letter.id, True)
        failed = letter.failed_again(describe_error(error), self.clock.now_ms())
        await self.dead_letters.add(failed)
        return RedriveOutcome(letter.id, False, failed.error)

    async def redrive_all(
        self, handler: str | None = None, *, limit: int = 1000
    ) -> list[RedriveOutcome]:
        """Re-drive up to ``limit`` dead letters (of ``handler``), oldest first. After a
        handler's first failure its remaining letters are left alone (its cause is likely
        not fixed yet)."""
        if handler is not None:
            self.handler(handler)
        ids, _ = self.dead_letters.ids(handler, limit=limit)
        outcomes: list[RedriveOutcome] = []
        failing: set[str] = set()
        for name, seq in ids:
            if name in failing or name not in self._runners:
                continue
            outcome = await self.redrive(name, seq)
            outcomes.append(outcome)
            if not outcome.redriven:
                failing.add(name)
        return outcomes

    async def replay(self, request: ReplayRequest) -> ReplayResult:
        return await self.replayer.replay(request)

    def dead_letter(self, handler: str, seq: int) -> DeadLetter:
        letter = self.dead_letters.get(handler, seq)
        if letter is None:
            raise UnknownDeadLetter(handler, seq)
        return letter

    def stats(self) -> dict[str, HandlerStats]:
        return {name: self._runners[name].stats() for name in sorted(self._runners)}

    def latency_histograms(self) -> dict[str, Histogram]:
        """Commit-to-handled seconds per handler (for Prometheus)."""
        return {name: self._runners[name].counters.latency for name in sorted(self._runners)}

    def handler_stats(self, name: str) -> HandlerStats:
        self.handler(name)
        return self._runners[name].stats()

    def describe(self, name: str) -> dict[str, Any]:
        handler = self.handler(name)
        describe = getattr(handler, "describe", None)
        base = describe() if callable(describe) else {"name": name, "kind": "custom"}
        return {
            **base,
            "source": self._sources[name],
            "routes": self._handler_routes(name),
            "dead_letters": self.dead_letters.count(name),
        }

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
