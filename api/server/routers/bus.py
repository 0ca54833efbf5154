"""``/bus``: the event bus over HTTP (handlers, routes, dead letters, replay, aggregates), and
its per-handler metrics.

Reads need the ``read`` role, changes ``admin``; a replay's dry run is a read. Handlers and
routes added here are stored and come back after a restart (see ``eventbus/catalog.py``).
Handler and route bodies have the shape of the YAML sections (``api/settings/bus.py``).
Listings show each one's ``owner`` (null: made here) and whether it is ``orphaned``: declared
by the configuration file, which no longer declares it (``eventbus/declare.py``); those are
changed in the file, and DELETE removes an orphan.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from prometheus_client.core import (
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from changestream import parse_event_types
from eventbus import MAX_REPLAY_LIMIT, EventBus, ReplayRequest, UnknownAggregation

from ...node import Node
from ...settings.base import defaults_of
from ...settings.bus import HandlerSettings, RouteSettings
from ...settings.problems import describe_validation_errors
from ..auth import Role
from ..dependencies import JsonBody, auth_of, authorization_of, node_of, require
from ..errors import BadRequest
from ..metrics import StatFamilies, histogram_buckets

__all__ = ["BusCollector", "bus_summary", "router"]

router = APIRouter(prefix="/bus", tags=["event bus"])
Seq = Annotated[int, Path(ge=0, le=2**64 - 1, description="the dead letter's first seq")]
MAX_PAGE = 1000


def _bus(request: Request) -> EventBus:
    return node_of(request).bus


def _parse(model: type[BaseModel], body: Any, what: str) -> Any:
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object describing the {what}")
    try:
        return model.model_validate(body)
    except PydanticValidationError as exc:
        problems = describe_validation_errors(exc.errors(), whole="(body)")
        raise BadRequest(f"invalid {what}: {'; '.join(problems)}") from None


def _named(body: Any, name: str) -> Any:
    if isinstance(body, dict):
        if body.get("name", name) != name:
            raise BadRequest(f"the body names {body['name']!r} but the path names {name!r}")
        return {**body, "name": name}
    return body


# -- handlers and routes ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Named:
    """Handlers or routes: objects of the bus kept by name, with the same five endpoints
    (list, add, get, add or replace, remove) under ``/bus/<plural>``."""

    plural: str
    singular: str
    settings: type[HandlerSettings] | type[RouteSettings]
    names: Callable[[EventBus], list[str]]
    document: Callable[[EventBus, str], dict[str, Any]]
    add: Callable[[EventBus, Any], Awaitable[object]]
    put: Callable[[EventBus, Any], Awaitable[bool]]  # True: created
    remove: Callable[[EventBus, str], Awaitable[None]]
    notes: dict[str, str]  # per endpoint: what its OpenAPI description says

    def register(self, on: APIRouter) -> None:
        async def list_all(request: Request) -> dict[str, Any]:
            bus = _bus(request)
            return {self.plural: [self.document(bus, name) for name in self.names(bus)]}

        async def add(request: Request, body: JsonBody) -> dict[str, Any]:
            bus = _bus(request)
            settings = _parse(self.settings, body, self.singular)
            await self.add(bus, settings)
            return self.document(bus, settings.name)

        async def get(request: Request, name: str) -> dict[str, Any]:
            return self.document(_bus(request), name)

        async def put(
            request: Request, response: Response, name: str, body: JsonBody
        ) -> dict[str, Any]:
            bus = _bus(request)
            settings = _parse(self.settings, _named(body, name), self.singular)
            response.status_code = 201 if await self.put(bus, settings) else 200
            return self.document(bus, name)

        async def delete(request: Request, name: str) -> dict[str, Any]:
            await self.remove(_bus(request), name)
            return {"name": name, "deleted": True}

        path, read, admin = f"/{self.plural}", [require(Role.READ)], [require(Role.ADMIN)]
        for endpoint, route, method, dependencies, status in (
            (list_all, path, "GET", read, 200),
            (add, path, "POST", admin, 201),
            (get, f"{path}/{{name}}", "GET", read, 200),
            (put, f"{path}/{{name}}", "PUT", admin, 200),
            (delete, f"{path}/{{name}}", "DELETE", admin, 200),
        ):
            verb = endpoint.__name__
            name = f"list_{self.plural}" if verb == "list_all" else f"{verb}_{self.singular}"
            on.add_api_route(
                route, endpoint, methods=[method], dependencies=dependencies,
                status_code=status, name=name, description=self.notes.get(endpoint.__name__),
                responses={201: {"description": "created"}} if method == "PUT" else None,
            )  # fmt: skip


def _handler_document(bus: EventBus, name: str) -> dict[str, Any]:
    return {**bus.describe(name), "stats": bus.handler_stats(name).to_dict()}


def _route_document(bus: EventBus, name: str) -> dict[str, Any]:
    orphan = bus.orphaned.routes().get(name)
    definition = orphan if orphan is not None else bus.route(name).to_dict()
    ownership = bus.ownership("route", name)
    return {**definition, "stored": orphan is not None or bus.route_is_stored(name),
            **ownership.to_dict()}  # fmt: skip


async def _put_handler(bus: EventBus, settings: HandlerSettings) -> bool:
    _, created = await bus.put_handler(settings.handler_spec(), persist=True)
    return created


_Named(
    "handlers",
    "handler",
    HandlerSettings,
    names=lambda bus: sorted([*(h.name for h in bus.handlers()), *bus.orphaned.handlers()]),
    document=_handler_document,
    add=lambda bus, settings: bus.add_handler(settings.handler_spec(), persist=True),
    put=_put_handler,
    remove=lambda bus, name: bus.remove_handler(name),
    notes={
        "add": "Add a webhook, log or python handler; it receives events from now on.",
        "put": "Add the handler or replace it; a replacement continues from the old one's "
        "checkpoint.",
        "delete": "Remove the handler and its checkpoint (its dead letters stay until purged).",
    },
).register(router)
_Named(
    "routes",
    "route",
    RouteSettings,
    names=lambda bus: [route.name for route in bus.routes()] + list(bus.orphaned.routes()),
    document=_route_document,
    add=lambda bus, settings: bus.add_route(settings.event_route(), persist=True),
    put=lambda bus, settings: bus.put_route(settings.event_route(), persist=True),
    remove=lambda bus, name: bus.remove_route(name),
    notes={
        "list_all": "Routes in the order they are consulted: highest priority first; orphans last."
    },
).register(router)


# -- dead letters -----------------------------------------------------------------------------


def _cursor(after: str | None) -> tuple[str, int] | None:
    if after is None:
        return None
    handler, _, seq = after.rpartition("/")
    if not handler or not seq.isdigit():
        raise BadRequest(f"after must be a dead letter id '<handler>/<seq>', got {after!r}")
    return handler, int(seq)


@router.get("/dead-letters", dependencies=[require(Role.READ)])
async def list_dead_letters(
    request: Request,
    handler: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> dict[str, Any]:
    """A page of dead letters, oldest first, per handler; ``next`` is the ``after`` of the
    next page (null at the end)."""
    bus = _bus(request)
    letters, cursor = bus.dead_letters.page(handler, after=_cursor(after), limit=limit)
    return {
        "dead_letters": [letter.summary() for letter in letters],
        "next": None if cursor is None else f"{cursor[0]}/{cursor[1]}",
        "counts": bus.dead_letters.counts(),
    }


@router.get("/dead-letters/{handler}/{seq}", dependencies=[require(Role.READ)])
async def get_dead_letter(request: Request, handler: str, seq: Seq) -> dict[str, Any]:
    """One dead letter with its events, error, attempts and times."""
    return _bus(request).dead_letter(handler, seq).to_dict()


@router.post("/dead-letters/{handler}/{seq}/redrive", dependencies=[require(Role.ADMIN)])
async def redrive_dead_letter(request: Request, handler: str, seq: Seq) -> dict[str, Any]:
    """Deliver it to its handler once more: removed if handled, kept (with the new error)
    if not."""
    outcome = await _bus(request).redrive(handler, seq)
    return outcome.to_dict()


class RedriveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    handler: str | None = None
    limit: int = Field(100, ge=1, le=MAX_PAGE)


@router.post("/dead-letters/redrive", dependencies=[require(Role.ADMIN)])
async def redrive_dead_letters(request: Request, body: JsonBody) -> dict[str, Any]:
    """Re-drive up to ``limit`` dead letters (of ``handler``), oldest first; a handler whose
    re-drive fails keeps its remaining letters for later."""
    parsed: RedriveBody = _parse(RedriveBody, body if body is not None else {}, "re-drive")
    outcomes = await _bus(request).redrive_all(parsed.handler, limit=parsed.limit)
    return {
        "redriven": sum(o.redriven for o in outcomes),
        "failed": sum(not o.redriven for o in outcomes),
        "results": [o.to_dict() for o in outcomes],
    }


@router.delete("/dead-letters/{handler}/{seq}", dependencies=[require(Role.ADMIN)])
async def delete_dead_letter(request: Request, handler: str, seq: Seq) -> dict[str, Any]:
    bus = _bus(request)
    letter = bus.dead_letter(handler, seq)  # 404 if there is none
    await bus.dead_letters.delete(handler, seq)
    return {"id": letter.id, "deleted": True}


@router.delete("/dead-letters", dependencies=[require(Role.ADMIN)])
async def purge_dead_letters(
    request: Request, handler: str | None = None, all: bool = False
) -> dict[str, Any]:
    """Delete the dead letters of ``handler``, or every one with ``all=true``."""
    if handler is None and not all:
        raise BadRequest("say which dead letters to purge: ?handler=<name>, or ?all=true")
    return {"purged": await _bus(request).dead_letters.purge(handler)}


# -- replay and aggregates ----------------------------------------------------------------------


class ReplayBody(BaseModel):
    """``handler`` or ``route``; a seq range (inclusive) or a time range in ms since the
    epoch (``to_ts`` exclusive); optional filters."""

    model_config = ConfigDict(extra="forbid")
    handler: str | None = None
    route: str | None = None
    from_seq: int | None = Field(None, ge=1)
    to_seq: int | None = Field(None, ge=1)
    from_ts: int | None = Field(None, ge=0)
    to_ts: int | None = Field(None, ge=0)
    event_types: tuple[Literal["INSERT", "UPDATE", "DELETE"], ...] = ()
    key_patterns: tuple[str, ...] = ()
    dry_run: bool = False
    limit: int = Field(defaults_of(ReplayRequest)["limit"], ge=1, le=MAX_REPLAY_LIMIT)
    ignore_routes: bool = Field(
        False,
        description="into a handler: every selected event, not only what its routes send it",
    )


@router.post("/replay", dependencies=[require(Role.READ)])
async def replay(request: Request, body: JsonBody) -> dict[str, Any]:
    """Deliver a stretch of the log again into a handler or a route. A dry run (which needs
    only the read role) delivers nothing and lists what would be delivered."""
    parsed: ReplayBody = _parse(ReplayBody, body, "replay")
    if not parsed.dry_run:
        auth_of(request).check(authorization_of(request), Role.ADMIN)
    fields = parsed.model_dump()
    fields["event_types"] = parse_event_types(parsed.event_types)
    result = await _bus(request).replay(ReplayRequest(**fields))
    return result.to_dict()


@router.get("/aggregates", dependencies=[require(Role.READ)])
async def aggregates(request: Request, name: str | None = None) -> dict[str, Any]:
    """The aggregations' windows: counts and sums per key pattern and event type (orphaned
    ones too: they no longer count, their windows stay)."""
    aggregator = _bus(request).aggregator
    if aggregator is None:
        if name is not None:
            raise UnknownAggregation(name)
        return {"aggregations": []}
    return {"aggregations": aggregator.results(name)}


@router.delete("/aggregates/{name}", dependencies=[require(Role.ADMIN)])
async def delete_aggregation(request: Request, name: str) -> dict[str, Any]:
    """Remove an orphaned aggregation and its windows (the others are the file's)."""
    await _bus(request).remove_aggregation(name)
    return {"name": name, "deleted": True}


# -- /stats and /metrics ----------------------------------------------------------------------


def bus_summary(node: Node) -> dict[str, Any]:
    """The bus's part of ``GET /stats``."""
    bus = node.bus
    return {
        "handlers": {name: stats.to_dict() for name, stats in bus.stats().items()},
        "routes": len(bus.routes()),
        "dead_letters": bus.dead_letters.counts(),
    }


class BusCollector(Collector):
    """Per-handler metrics, built from the bus's counters when scraped."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        if not self.node.started:
            return
        bus = self.node.bus
        families = StatFamilies(
            "kvdb_bus",
            ["handler"],
            counters={
                "delivered": "Events a handler has handled",
                "failed": "Events in failed handler calls (each attempt)",
                "retried": "Events whose delivery was retried",
                "dead_lettered": "Events sent to the dead-letter store",
                "dead_letters_evicted": "Dead letters evicted past the per-handler limit",
            },
            gauges={
                "lag_events": "Committed events a handler has not finished",
                "lag_seconds": "Age of the oldest event a handler has not finished",
                "pending": "Events queued for a handler",
            },
        )
        for name, stats in bus.stats().items():
            families.add([name], {**stats.to_dict(), "lag_seconds": stats.lag_ms / 1000})
        yield from families
        latency = HistogramMetricFamily(
            "kvdb_bus_latency_seconds",
            "Commit to handled, per delivery (its oldest event)",
            labels=["handler"],
        )
        for name, histogram in bus.latency_histograms().items():
            latency.add_metric([name], histogram_buckets(histogram), histogram.sum)
        yield latency
        stored = GaugeMetricFamily(
            "kvdb_bus_dead_letters", "Dead letters stored, by handler", labels=["handler"]
        )
        for name, count in bus.dead_letters.counts().items():
            stored.add_metric([name], count)
        yield stored
