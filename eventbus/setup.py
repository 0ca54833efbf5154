"""``BusSetup``: what is declared at every start, and its reconciliation with what is stored.

At start the bus plans everything before it applies anything: the declared handlers (YAML
specs, or handler objects from an embedding program), then the stored handlers whose names
are not declared (a declared definition wins over a stored one, which is then dropped), then
the declared and stored routes, each checked against the planned handlers. Any problem
raises before a single handler starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .aggregator import AggregationSpec
from .catalog import Catalog
from .errors import InvalidHandler, InvalidRoute
from .handlers import EventHandler
from .routes import EventRoute
from .specs import HandlerSpec

__all__ = ["BusPlan", "BusSetup", "check_handler", "check_route_handlers", "plan"]


@dataclass(frozen=True)
class BusSetup:
    """What is declared at every start: by the YAML file, or by a program embedding kvdb."""

    handlers: tuple[HandlerSpec | EventHandler, ...] = ()
    routes: tuple[EventRoute, ...] = ()
    aggregations: tuple[AggregationSpec, ...] = ()


@dataclass
class BusPlan:
    handlers: dict[str, EventHandler] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # "config" | "stored" | "code"
    routes: dict[str, EventRoute] = field(default_factory=dict)
    stored_routes: set[str] = field(default_factory=set)
    # stored definitions that a declaration of the same name replaces
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
    for name, spec in catalog.handlers().items():
        if name in handlers:
            result.shadowed_handlers.append(name)
        else:
            handlers[name], sources[name] = spec.build(), "stored"
    for route in setup.routes:
        if route.name in result.routes:
            raise InvalidRoute(f"route names must be unique; {route.name!r} repeats")
        check_route_handlers(route, handlers)
        result.routes[route.name] = route
    for name, route in catalog.routes().items():
        if name in result.routes:
            result.shadowed_routes.append(name)
            continue
        check_route_handlers(route, handlers, stored=True)
        result.routes[name] = route
        result.stored_routes.add(name)
    return result


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
