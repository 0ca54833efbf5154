"""Stored definitions: handlers and routes added at run time, kept as system records.

What is stored, and why: a route or built-in handler added through the HTTP API (or from code
with ``persist=True``) is an operator's decision that should outlive a restart, as a stream
created through ``/streams`` does. It is stored under ``bus/handler/<name>`` or
``bus/route/<name>`` as the JSON of its definition and restored at start. Definitions from
the YAML file are not stored: the file declares them at every start (and wins over a stored
definition of the same name). Handlers made of code (``FunctionEventHandler``...) cannot be
stored; the program registers them again after each start.
"""

from __future__ import annotations

import json
from typing import Any

from kvdb import Store

from .errors import EventBusError, InvalidBusConfig
from .routes import EventRoute
from .specs import HandlerSpec

__all__ = ["Catalog"]

HANDLER_PREFIX = "bus/handler/"
ROUTE_PREFIX = "bus/route/"


class Catalog:
    def __init__(self, store: Store) -> None:
        self._store = store

    def handlers(self) -> dict[str, HandlerSpec]:
        return {
            spec.name: spec for spec in self._load(HANDLER_PREFIX, HandlerSpec.from_dict, "handler")
        }

    def routes(self) -> dict[str, EventRoute]:
        return {
            route.name: route for route in self._load(ROUTE_PREFIX, EventRoute.from_dict, "route")
        }

    def _load(self, prefix: str, decode: Any, kind: str) -> list[Any]:
        loaded = []
        for key, raw in self._store.list_system_records(prefix):
            try:
                loaded.append(decode(json.loads(raw)))
            except (ValueError, TypeError, EventBusError) as exc:
                reason = exc.message if isinstance(exc, EventBusError) else str(exc)
                raise InvalidBusConfig(
                    f"the stored {kind} definition {key!r} cannot be restored: {reason}. Define "
                    f"a {kind} named {key[len(prefix) :]!r} in the YAML file to replace it, "
                    f"then remove it with DELETE /bus/{kind}s/{key[len(prefix) :]}"
                ) from exc
        return loaded

    async def put_handler(self, spec: HandlerSpec) -> None:
        await self._put(HANDLER_PREFIX + spec.name, spec.to_dict())

    async def put_route(self, route: EventRoute) -> None:
        await self._put(ROUTE_PREFIX + route.name, route.to_dict())

    async def delete_handler(self, name: str) -> None:
        await self._store.delete_system_record(HANDLER_PREFIX + name)

    async def delete_route(self, name: str) -> None:
        await self._store.delete_system_record(ROUTE_PREFIX + name)

    async def _put(self, key: str, doc: dict[str, Any]) -> None:
        await self._store.put_system_record(key, json.dumps(doc, sort_keys=True).encode())
