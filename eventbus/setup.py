"""``BusSetup``: what is registered at every start, and how it joins what is stored.

At start the bus plans everything before it applies anything: the handlers a program
registers (handler objects, or specs) from code, then the stored handlers (made through the
API, or declared by the configuration file: see ``declare.py``), then the routes, each
checked against the planned handlers. A program's handler wins over a stored one of the
same name made through the API (whose record is then dropped), but never over one the file
declares. Orphaned definitions are set aside: they neither run nor route. Any problem raises
before a single handler starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from changestream import Ownership

from .aggregator import AggregationSpec
from .catalog import Catalog, Stored
from .errors import InvalidHandler, InvalidRoute
from .handlers import EventHandler
from .routes import EventRoute
from .specs import HandlerSpec

__all__ = ["BusPlan", "BusSetup", "check_handler", "check_route_handlers", "plan"]


@dataclass(frozen=True)
class BusSetup:
    """Handlers, routes and aggregations: what a program registers at every start (passed
    to ``EventBus.start``), or what the configuration file declares (``EventBus.declare``)."""

    handlers: tuple[HandlerSpec | EventHandler, ...] = ()
    routes: tuple[EventRoute, ...] = ()
    aggregations: tuple[AggregationSpec, ...] = ()


@dataclass
class BusPlan:
    handlers: dict[str, EventHandler] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # "config" | "stored" | "code"
    routes: dict[str, EventRoute] = field(default_factory=dict)
    stored_routes: set[str] = field(default_factory=set)
    ownership: dict[str, Ownership] = field(default_factory=dict)  # "handler/<name>", "route/.."
    orphaned_handlers: dict[str, Stored] = field(default_factory=dict)
    orphaned_routes: dict[str, Stored] = field(default_factory=dict)
    # stored definitions (made through the API) that a program's one of the same name replaces
    shadowed_handlers: list[str] = field(default_factory=list)
    shadowed_routes: list[str] = field(default_factory=list)


def plan(setup: BusSetup, catalog: Catalog) -> BusPlan:
    result = BusPlan()
    handlers, sources = result.handlers, result.sources
    for item in setup.handlers:
        handler = item.build() if isinstance(item, HandlerSpec) else check_handler(item)
        if handler.name in handlers:
            raise InvalidHandler(f"handler names must be unique; {handler.name!r} repeats")
        handlers[handler.name] = handler
        sources[handler.name] = "config" if isinstance(item, HandlerSpec) else "code"
    result.orphaned_handlers = _orphans(catalog.handler_records())
    for name, (_, ownership) in result.orphaned_handlers.items():
        if name in handlers:
            _shadow("handler", name, ownership)
    for name, (spec, ownership) in catalog.handlers().items():
        if name in handlers:
            _shadow("handler", name, ownership)
            result.shadowed_handlers.append(name)
            continue
        handlers[name] = spec.build()
        sources[name] = "stored" if ownership.owner is None else "config"
        result.ownership[f"handler/{name}"] = ownership
    known = [*handlers, *result.orphaned_handlers]
    for route in setup.routes:
        if route.name in result.routes:
            raise InvalidRoute(f"route names must be unique; {route.name!r} repeats")
        check_route_handlers(route, known)
        result.routes[route.name] = route
    result.orphaned_routes = _orphans(catalog.route_records())
    for name, (_, ownership) in result.orphaned_routes.items():
        if name in result.routes:
            _shadow("route", name, ownership)
    for name, (route, ownership) in catalog.routes().items():
        if name in result.routes:
            _shadow("route", name, ownership)
            result.shadowed_routes.append(name)
            continue
        check_route_handlers(route, known, stored=True)
        result.routes[name] = route
        result.stored_routes.add(name)
        result.ownership[f"route/{name}"] = ownership
    return result


def _orphans(records: dict[str, Stored]) -> dict[str, Stored]:
    return {name: stored for name, stored in records.items() if stored[1].orphaned}


def _shadow(kind: str, name: str, ownership: Ownership) -> None:
    if ownership.owner is not None:
        error = InvalidHandler if kind == "handler" else InvalidRoute
        raise error(
            f"the program registers a {kind} named {name!r}, but {ownership.owner!r} declares "
            f"one of that name; rename one of them"
        )


def check_handler(handler: Any) -> EventHandler:
    if not isinstance(handler, EventHandler):
        raise InvalidHandler(
            f"{handler!r} is not an event handler: it needs name, batch_size, "
            "flush_interval_ms, retry and async start/handle/close (subclass BaseEventHandler)"
        )
    return handler


def check_route_handlers(
    route: EventRoute, handlers: Iterable[str], *, stored: bool = False
) -> None:
    known = set(handlers)
    missing = [name for name in route.handler_names if name not in known]
    if not missing:
        return
    defined = ", ".join(sorted(known)) or "none"
    hint = (
        "; the route was added at run time and its handler is gone: define the handler again "
        "in the configuration file, then remove the route with DELETE /bus/routes/"
        f"{route.name}"
        if stored
        else ""
    )
    raise InvalidRoute(
        f"route {route.name!r} names unknown handler(s) {', '.join(missing)} (defined: "
        f"{defined}){hint}"
    )
