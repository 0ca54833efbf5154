"""Errors of the event bus. The root derives from ``kvdb.StructuredError``, the shape every
package's errors share (``code``, ``message``, ``fields``; see ``kvdb/errors.py``).

    EventBusError                                                        (event_bus_error)
    ├── InvalidBusConfig         a definition that cannot work            (invalid_bus_config)
    │   ├── InvalidRoute         bad route: name, types, pattern, handlers (invalid_route)
    │   ├── InvalidHandler       bad handler: URL, import path, sizes      (invalid_handler)
    │   ├── InvalidAggregation   bad aggregation: window, pattern, field   (invalid_aggregation)
    │   └── InvalidReplay        a replay request that cannot run          (invalid_replay)
    ├── UnknownHandler           no handler by that name; name             (unknown_handler)
    ├── UnknownRoute             no route by that name; name               (unknown_route)
    ├── UnknownDeadLetter        no dead letter with that id; handler, seq (unknown_dead_letter)
    ├── UnknownAggregation       no aggregation by that name; name         (unknown_aggregation)
    ├── HandlerExists            add of a handler name already taken; name (handler_exists)
    ├── RouteExists              add of a route name already taken; name   (route_exists)
    ├── HandlerInUse             removal of a handler routes still name;
    │                            name, routes                              (handler_in_use)
    ├── BusNotStarted            the bus used before start() or after stop() (not_started)
    └── DeliveryError            raised by handlers: a delivery failed     (delivery_failed)
        ├── PartialDelivery      the first ``handled`` events went through; handled
        └── PermanentDeliveryError  retrying cannot help: dead-letter now

A replay that reaches past the retained log raises ``kvdb.Compacted`` (with ``oldest_seq``),
the same error a direct read of the log raises.
"""

from __future__ import annotations

from kvdb import StructuredError

__all__ = [
    "BusNotStarted",
    "DeliveryError",
    "EventBusError",
    "HandlerExists",
    "HandlerInUse",
    "InvalidAggregation",
    "InvalidBusConfig",
    "InvalidHandler",
    "InvalidReplay",
    "InvalidRoute",
    "PartialDelivery",
    "PermanentDeliveryError",
    "RouteExists",
    "UnknownAggregation",
    "UnknownDeadLetter",
    "UnknownHandler",
    "UnknownRoute",
]


class EventBusError(StructuredError):
    """Root of every error the event bus raises."""

    code = "event_bus_error"


class InvalidBusConfig(EventBusError):
    code = "invalid_bus_config"


class InvalidRoute(InvalidBusConfig):
    code = "invalid_route"


class InvalidHandler(InvalidBusConfig):
    code = "invalid_handler"


class InvalidAggregation(InvalidBusConfig):
    code = "invalid_aggregation"


class InvalidReplay(InvalidBusConfig):
    code = "invalid_replay"


class UnknownHandler(EventBusError):
    code = "unknown_handler"

    def __init__(self, name: str) -> None:
        super().__init__(f"no handler named {name!r}; list them with GET /bus/handlers", name=name)
        self.name = name


class UnknownRoute(EventBusError):
    code = "unknown_route"

    def __init__(self, name: str) -> None:
        super().__init__(f"no route named {name!r}; list them with GET /bus/routes", name=name)
        self.name = name


class UnknownDeadLetter(EventBusError):
    code = "unknown_dead_letter"

    def __init__(self, handler: str, seq: int) -> None:
        super().__init__(
            f"no dead letter {handler}/{seq}; list them with GET /bus/dead-letters?handler="
            f"{handler}",
            handler=handler,
            seq=seq,
        )
        self.handler = handler
        self.seq = seq


class UnknownAggregation(EventBusError):
    code = "unknown_aggregation"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"no aggregation named {name!r}; list them with GET /bus/aggregates", name=name
        )
        self.name = name


class HandlerExists(EventBusError):
    code = "handler_exists"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"a handler named {name!r} already exists; remove it first or pick another name",
            name=name,
        )
        self.name = name


class RouteExists(EventBusError):
    code = "route_exists"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"a route named {name!r} already exists; replace it with PUT /bus/routes/{name} or "
            "pick another name",
            name=name,
        )
        self.name = name


class HandlerInUse(EventBusError):
    code = "handler_in_use"

    def __init__(self, name: str, routes: list[str]) -> None:
        super().__init__(
            f"handler {name!r} is still named by route(s) {', '.join(routes)}; remove those "
            "routes (or drop the handler from them) first",
            name=name,
            routes=routes,
        )
        self.name = name
        self.routes = routes


class BusNotStarted(EventBusError):
    code = "not_started"

    def __init__(self) -> None:
        super().__init__("the event bus is not started: call start() first")


class DeliveryError(EventBusError):
    """A handler could not handle what it was given. Handlers may raise any exception; these
    subclasses tell the bus more than a plain failure does."""

    code = "delivery_failed"


class PartialDelivery(DeliveryError):
    """Raised by a handler of independent events: ``events[:handled]`` were handled and
    ``events[handled]`` failed with ``__cause__``. Only that event is retried (then
    dead-lettered); the ones before it are not delivered again."""

    def __init__(self, handled: int, cause: BaseException) -> None:
        super().__init__(f"event {handled} of the delivery failed: {cause!r}", handled=handled)
        self.handled = handled
        self.cause = cause


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help (a webhook answered 400, say): the events go straight to the
    dead-letter store, where they can be inspected and re-driven once the cause is fixed."""
