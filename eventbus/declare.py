"""Declaring handlers, routes and aggregations: the rule of ``changestream/declare.py``,
applied to the bus's stored definitions before the bus starts.

``declare_bus`` plans the three kinds whole, checks them, and only then writes: what the
owner declares is stored with its ownership (created, updated, or adopted back from
orphanhood), what it declared before and no longer does is marked orphaned, and with
``prune`` every orphan of the owner is removed. ``EventBus.start`` then runs what is stored:
so nothing is ever delivered under a definition the file has changed or dropped.

What "stopped and kept" means here:

- an orphaned **handler** receives nothing (no route delivers to it, whatever names it) and
  keeps its checkpoint, which keeps holding back change-log retention: declared again, it
  resumes right after it. ``DELETE /bus/handlers/<name>`` removes it and its checkpoint (its
  dead letters stay until purged, as for any handler);
- an orphaned **route** stops routing; its definition is kept and listed;
- an orphaned **aggregation** stops counting and keeps its windows, readable.

A pruned handler still named by a route made through the API stays orphaned (removing it
would break that route); the warning says so.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from changestream import DeclarePlan, Ownership, plan_declaration
from changestream.consumer import checkpoint_key
from kvdb import Store

from .aggregator import AggregationSpec, forget_aggregation, spec_key, stored_aggregations
from .catalog import HANDLER_PREFIX, ROUTE_PREFIX, Catalog, Stored
from .errors import InvalidHandler, InvalidRoute
from .routes import EventRoute
from .setup import BusSetup
from .specs import HandlerSpec

__all__ = ["BusDeclaration", "declare_bus"]

log = logging.getLogger("eventbus.declare")


@dataclass(frozen=True)
class BusDeclaration:
    """What a declaration did to each kind."""

    handlers: DeclarePlan[HandlerSpec]
    routes: DeclarePlan[EventRoute]
    aggregations: DeclarePlan[AggregationSpec]


async def declare_bus(
    store: Store, stream: str, setup: BusSetup, *, owner: str, prune: bool, dry_run: bool = False
) -> BusDeclaration:
    """Apply ``owner``'s declaration to the stored definitions (see the module docstring).
    ``stream`` is the bus's stream, whose consumers' checkpoints a prune removes. ``dry_run``
    only plans and checks."""
    catalog = Catalog(store)
    specs = [_spec(item) for item in setup.handlers]
    handler_records = catalog.handler_records()
    route_records = catalog.route_records()
    aggregation_records = stored_aggregations(store)
    handlers = plan_declaration(
        "handler", specs, handler_records, owner=owner, prune=prune, same=_same
    )
    routes = plan_declaration(
        "route", setup.routes, route_records, owner=owner, prune=prune, same=_same
    )
    aggregations = plan_declaration(
        "aggregation", setup.aggregations, aggregation_records,
        owner=owner, prune=prune, same=_same, claim=_unowned_aggregation,
    )  # fmt: skip
    declared = {spec.name for spec in specs}
    for route in setup.routes:
        missing = [name for name in route.handler_names if name not in declared]
        if missing:
            raise InvalidRoute(
                f"route {route.name!r} names handler(s) {', '.join(missing)} that "
                f"{owner!r} does not declare; a declared route names declared handlers"
            )
    handlers = _keep_named_handlers(handlers, handler_records, route_records, routes)
    if dry_run:
        return BusDeclaration(handlers, routes, aggregations)

    mine = Ownership(owner)
    for spec in (*handlers.create, *handlers.update, *handlers.unchanged):
        if spec not in handlers.unchanged or handlers.rewrites(spec.name):
            await catalog.put_handler(spec, mine)
    for route in (*routes.create, *routes.update, *routes.unchanged):
        if route not in routes.unchanged or routes.rewrites(route.name):
            await catalog.put_route(route, mine)
    for aggregation in aggregations.update:
        await forget_aggregation(store, aggregation.name)  # its windows counted another thing
    for aggregation in (*aggregations.create, *aggregations.update, *aggregations.unchanged):
        if aggregation not in aggregations.unchanged or aggregations.rewrites(aggregation.name):
            await _put_aggregation(store, aggregation.to_dict(), mine)
    for name in routes.orphan:
        await catalog.put(ROUTE_PREFIX, name, route_records[name][0], mine.orphan())
    for name in handlers.orphan:
        await catalog.put(HANDLER_PREFIX, name, handler_records[name][0], mine.orphan())
    for name in aggregations.orphan:
        await _put_aggregation(store, aggregation_records[name][0], mine.orphan())
    for name in routes.prune:
        await catalog.delete_route(name)
        log.warning("pruned route %s (no longer declared by %s)", name, owner)
    for name in handlers.prune:
        await catalog.delete_handler(name)
        pinned = store.get_checkpoint(checkpoint_key(stream, name))
        if pinned is not None:
            await store.delete_checkpoint(pinned.name)
        log.warning(
            "pruned handler %s (no longer declared by %s) and its checkpoint%s; its dead "
            "letters, if any, stay until purged",
            name, owner, "" if pinned is None else f" (at seq {pinned.seq})",
        )  # fmt: skip
    for name in aggregations.prune:
        await forget_aggregation(store, name)
        log.warning("pruned aggregation %s (no longer declared by %s) and its windows", name, owner)
    for kind, plan in (("handler", handlers), ("route", routes), ("aggregation", aggregations)):
        for name in plan.adopt:
            log.info("%s %s is declared by %s again: resuming it", kind, name, owner)
    return BusDeclaration(handlers, routes, aggregations)


def _spec(item: Any) -> HandlerSpec:
    if not isinstance(item, HandlerSpec):
        raise InvalidHandler(
            f"handler {getattr(item, 'name', item)!r} is made of code and cannot be declared "
            "(a declaration is stored); register it with EventBus.start, or describe it as a "
            "HandlerSpec (webhook, log, python)"
        )
    return item


def _same(declared: Any, stored: dict[str, Any]) -> bool:
    return bool(declared.to_dict() == stored)


def _unowned_aggregation(declared: AggregationSpec, stored: dict[str, Any]) -> bool:
    """Aggregations have no API: one stored before owners were was declared by a file (or
    registered by a program), so a declaration takes it."""
    return True


def _keep_named_handlers(
    handlers: DeclarePlan[HandlerSpec],
    handler_records: dict[str, Stored],
    route_records: dict[str, Stored],
    routes: DeclarePlan[EventRoute],
) -> DeclarePlan[HandlerSpec]:
    """Do not prune a handler that a route which stays (one made through the API) names:
    orphan it instead."""
    staying = [doc for name, (doc, _) in route_records.items() if name not in routes.prune]
    named = {name for doc in staying for name in doc.get("handler_names", ())}
    held = [name for name in handlers.prune if name in named]
    if not held:
        return handlers
    for name in held:
        log.warning(
            "handler %s is not pruned: a route that stays names it; it stays orphaned until "
            "the route no longer names it",
            name,
        )
    newly = tuple(name for name in held if not handler_records[name][1].orphaned)
    return DeclarePlan(
        handlers.kind, handlers.owner, handlers.create, handlers.update, handlers.unchanged,
        handlers.adopt, (*handlers.orphan, *newly),
        tuple(n for n in handlers.prune if n not in held), (*handlers.kept, *held),
        handlers.claimed,
    )  # fmt: skip


async def _put_aggregation(store: Store, doc: dict[str, Any], ownership: Ownership) -> None:
    record = json.dumps({**doc, **ownership.to_fields()}, sort_keys=True).encode()
    await store.put_system_record(spec_key(doc["name"]), record)
