"""``OrphanedDefinitions``: the handlers and routes a configuration file declared and no longer
does (see ``declare.py``), kept aside by a running bus.

They run and route nothing; they are listed (``orphaned: true``), an orphaned handler's
checkpoint keeps holding back change-log retention, and an explicit delete removes them. The
orphaned aggregations live in the aggregator, which keeps their windows readable.
"""

from __future__ import annotations

import logging
from collections.abc import Set
from typing import Any

from changestream import Orphan, Orphaned, Ownership, OwnershipConflict
from changestream.consumer import checkpoint_key
from kvdb import Store

from .aggregator import CONSUMER as AGGREGATOR_CONSUMER
from .aggregator import EventAggregator, forget_aggregation
from .catalog import Catalog, Stored
from .errors import InvalidAggregation, UnknownAggregation
from .stats import HandlerStats, orphan_stats

__all__ = [
    "OrphanedDefinitions",
    "remove_orphaned_aggregation",
    "warn_about_leftover_checkpoints",
]

log = logging.getLogger("eventbus.orphans")

_KINDS = ("webhook", "log", "python")


class OrphanedDefinitions:
    def __init__(self, store: Store, stream: str) -> None:
        self._store = store
        self._stream = stream
        self._handlers: dict[str, Stored] = {}
        self._routes: dict[str, Stored] = {}

    def load(self, handlers: dict[str, Stored], routes: dict[str, Stored]) -> None:
        self._handlers, self._routes = dict(sorted(handlers.items())), dict(sorted(routes.items()))

    def clear(self) -> None:
        self._handlers, self._routes = {}, {}

    def _of(self, kind: str) -> dict[str, Stored]:
        return self._handlers if kind == "handler" else self._routes

    def handlers(self) -> dict[str, dict[str, Any]]:
        """Orphaned handlers' stored definitions, by name."""
        return {name: doc for name, (doc, _) in self._handlers.items()}

    def routes(self) -> dict[str, dict[str, Any]]:
        """Orphaned routes' stored definitions, by name."""
        return {name: doc for name, (doc, _) in self._routes.items()}

    def __contains__(self, key: tuple[str, str]) -> bool:
        kind, name = key
        return name in self._of(kind)

    def ownership(self, kind: str, name: str) -> Ownership | None:
        stored = self._of(kind).get(name)
        return None if stored is None else stored[1]

    def check_free(self, kind: str, name: str) -> None:
        """Refuse to make a ``kind`` of this name while an orphan holds it."""
        stored = self._of(kind).get(name)
        if stored is not None:
            raise Orphaned(kind, name, stored[1].owner or "")

    def routes_naming(self, handler: str) -> list[str]:
        return [
            name
            for name, (doc, _) in self._routes.items()
            if handler in doc.get("handler_names", ())
        ]

    def describe(self, name: str) -> dict[str, Any]:
        """An orphaned handler as ``GET /bus/handlers`` shows it: its stored definition."""
        doc = self._handlers[name][0]
        return {"name": name, "kind": next((k for k in _KINDS if k in doc), "custom"), **doc}

    def checkpoint(self, name: str) -> int | None:
        checkpoint = self._store.get_checkpoint(checkpoint_key(self._stream, name))
        return None if checkpoint is None else checkpoint.seq

    def stats(self, name: str) -> HandlerStats:
        return orphan_stats(name, self.checkpoint(name) or 0, self._store.last_seq)

    async def remove(self, kind: str, name: str, catalog: Catalog) -> None:
        """Delete the orphan's definition and, for a handler, its checkpoint (releasing the
        retention it held)."""
        del self._of(kind)[name]
        if kind == "route":
            await catalog.delete_route(name)
            return
        key = checkpoint_key(self._stream, name)
        if self._store.get_checkpoint(key) is not None:
            await self._store.delete_checkpoint(key)
        await catalog.delete_handler(name)

    def report(self, aggregator: EventAggregator | None) -> tuple[Orphan, ...]:
        """Every orphan of the bus, and the checkpoints with which it still pins retention."""
        found = []
        for name, (_, owned) in self._handlers.items():
            seq = self.checkpoint(name)
            pins = {} if seq is None else {checkpoint_key(self._stream, name): seq}
            found.append(
                Orphan("handler", name, owned.owner or "", pins, f"DELETE /bus/handlers/{name}")
            )
        for name, (_, owned) in self._routes.items():
            found.append(Orphan("route", name, owned.owner or "", {}, f"DELETE /bus/routes/{name}"))
        if aggregator is None:
            return tuple(found)
        pins = {}
        if not aggregator.counting:  # its checkpoint stays where counting stopped
            key = checkpoint_key(self._stream, AGGREGATOR_CONSUMER)
            checkpoint = self._store.get_checkpoint(key)
            pins = {} if checkpoint is None else {key: checkpoint.seq}
        for name in aggregator.orphans:
            owner = aggregator.ownership[name].owner or ""
            note = "its windows stay readable at /bus/aggregates"
            found.append(Orphan("aggregation", name, owner, pins, note=note))
        return tuple(found)


def warn_about_leftover_checkpoints(store: Store, stream: str, known: Set[str]) -> None:
    """Warn about checkpoints of the bus stream that belong to no handler defined now (a
    program's handler it did not register this time, or one from an earlier version)."""
    prefix = checkpoint_key(stream, "")
    leftovers = sorted(
        cp.name[len(prefix) :]
        for cp in store.list_checkpoints()
        if cp.name.startswith(prefix) and cp.name[len(prefix) :] not in known
    )
    if leftovers:
        log.warning(
            "checkpoints of handler(s) %s hold change-log retention but no such handler is "
            "defined; unless the program adds them from code, release them with "
            "DELETE /bus/handlers/<name>",
            ", ".join(leftovers),
        )


async def remove_orphaned_aggregation(
    store: Store, stream: str, aggregator: EventAggregator | None, name: str
) -> EventAggregator | None:
    """Remove orphaned aggregation ``name`` and its windows; returns the aggregator left (None
    when nothing is left, its checkpoint then released). The others are not deleted here:
    they are changed where they are declared or registered."""
    if aggregator is None or name not in aggregator.orphans:
        counting = [] if aggregator is None else [spec.name for spec in aggregator.specs]
        if aggregator is None or name not in counting:
            raise UnknownAggregation(name)
        owner = aggregator.ownership.get(name, Ownership()).owner
        if owner is not None:
            raise OwnershipConflict.not_the_api("aggregation", name, owner)
        raise InvalidAggregation(f"aggregation {name!r} is registered by the program at start")
    aggregator.drop_orphan(name)
    await forget_aggregation(store, name)
    if aggregator.counting or aggregator.orphans:
        return aggregator
    key = checkpoint_key(stream, AGGREGATOR_CONSUMER)
    if store.get_checkpoint(key) is not None:
        await store.delete_checkpoint(key)
    return None
