"""Stored definitions: handlers and routes, kept as system records with their ownership.

What is stored, and why: a route or built-in handler added through the HTTP API (or from code
with ``persist=True``) is an operator's decision that should outlive a restart, as a stream
created through ``/streams`` does. Those declared by the configuration file are stored too,
marked with their owner, so that the next declaration can tell which ones the file dropped
(they are orphaned, not lost: see ``changestream/declare.py``). Each lives under
``bus/handler/<name>`` or ``bus/route/<name>`` as the JSON of its definition plus ``owner``
and ``orphaned``. Handlers made of code (``FunctionEventHandler``...) cannot be stored; the
program registers them again after each start.

An orphan's definition is kept as it was stored and not decoded at start: a python handler
whose module is gone must not keep the node from starting when nothing runs it.
"""

from __future__ import annotations

import json
from typing import Any

from changestream import Ownership
from kvdb import Store

from .errors import EventBusError, InvalidBusConfig
from .routes import EventRoute
from .specs import HandlerSpec

__all__ = ["Catalog", "Stored"]

HANDLER_PREFIX = "bus/handler/"
ROUTE_PREFIX = "bus/route/"

Stored = tuple[dict[str, Any], Ownership]  # a definition's JSON and its ownership
_API = Ownership()  # made through the API (or by a program with persist=True)


class Catalog:
    def __init__(self, store: Store) -> None:
        self._store = store

    # -- reading ------------------------------------------------------------------------------

    def handler_records(self) -> dict[str, Stored]:
        return self._records(HANDLER_PREFIX, "handler")

    def route_records(self) -> dict[str, Stored]:
        return self._records(ROUTE_PREFIX, "route")

    def handlers(self) -> dict[str, tuple[HandlerSpec, Ownership]]:
        """The stored handlers that run (orphans excluded), decoded."""
        return self._decode(self.handler_records(), HandlerSpec.from_dict, "handler")

    def routes(self) -> dict[str, tuple[EventRoute, Ownership]]:
        """The stored routes that route (orphans excluded), decoded."""
        return self._decode(self.route_records(), EventRoute.from_dict, "route")

    def _records(self, prefix: str, kind: str) -> dict[str, Stored]:
        records: dict[str, Stored] = {}
        for key, raw in self._store.list_system_records(prefix):
            name = key[len(prefix) :]
            try:
                doc = json.loads(raw)
                if not isinstance(doc, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                raise _unreadable(kind, name, str(exc), Ownership()) from exc
            records[name] = Ownership.split(doc)
        return records

    @staticmethod
    def _decode(records: dict[str, Stored], decode: Any, kind: str) -> dict[str, Any]:
        decoded = {}
        for name, (doc, ownership) in records.items():
            if ownership.orphaned:
                continue
            try:
                decoded[name] = (decode(doc), ownership)
            except (ValueError, TypeError, EventBusError) as exc:
                reason = exc.message if isinstance(exc, EventBusError) else str(exc)
                raise _unreadable(kind, name, reason, ownership) from exc
        return decoded

    # -- writing ------------------------------------------------------------------------------

    async def put_handler(self, spec: HandlerSpec, ownership: Ownership = _API) -> None:
        await self.put(HANDLER_PREFIX, spec.name, spec.to_dict(), ownership)

    async def put_route(self, route: EventRoute, ownership: Ownership = _API) -> None:
        await self.put(ROUTE_PREFIX, route.name, route.to_dict(), ownership)

    async def put(self, prefix: str, name: str, doc: dict[str, Any], ownership: Ownership) -> None:
        record = json.dumps({**doc, **ownership.to_fields()}, sort_keys=True).encode()
        await self._store.put_system_record(prefix + name, record)

    async def delete_handler(self, name: str) -> None:
        await self._store.delete_system_record(HANDLER_PREFIX + name)

    async def delete_route(self, name: str) -> None:
        await self._store.delete_system_record(ROUTE_PREFIX + name)


def _unreadable(kind: str, name: str, reason: str, ownership: Ownership) -> InvalidBusConfig:
    fix = (
        f"declare it again in the configuration file ({ownership.owner!r}), which replaces it"
        if ownership.owner is not None
        else "make it loadable again (install the module its function lives in, fix the "
        f"path), then change or remove it with PUT or DELETE /bus/{kind}s/{name}"
    )
    return InvalidBusConfig(
        f"the stored {kind} definition {name!r} cannot be restored: {reason}. To fix it, {fix}"
    )
