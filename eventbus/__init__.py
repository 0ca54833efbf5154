"""The event bus: routes committed change events to handlers, with retries, dead letters,
windowed aggregates and replay. Depends on ``kvdb`` and ``changestream`` only."""

from __future__ import annotations

from .aggregator import AggregationSpec, EventAggregator
from .bus import BusSetup, EventBus, RedriveOutcome
from .config import BusConfig, RetryPolicy
from .dead_letters import DeadLetter, DeadLetterStore
from .errors import (
    BusNotStarted,
    DeliveryError,
    EventBusError,
    HandlerExists,
    HandlerInUse,
    InvalidAggregation,
    InvalidBusConfig,
    InvalidHandler,
    InvalidReplay,
    InvalidRoute,
    PartialDelivery,
    PermanentDeliveryError,
    RouteExists,
    UnknownAggregation,
    UnknownDeadLetter,
    UnknownHandler,
    UnknownRoute,
)
from .handlers import (
    BaseEventHandler,
    BatchEventHandler,
    ConditionalEventHandler,
    EventHandler,
    FunctionEventHandler,
)
from .logfile import LogFileHandler
from .replayer import MAX_REPLAY_LIMIT, EventReplayer, ReplayRequest, ReplayResult
from .routes import EventRoute, Router, RouteTable
from .specs import HandlerSpec, LogTarget, PythonTarget, WebhookTarget, resolve_callable
from .stats import HandlerStats
from .webhook import WebhookHandler

__all__ = [
    "MAX_REPLAY_LIMIT",
    "AggregationSpec",
    "BaseEventHandler",
    "BatchEventHandler",
    "BusConfig",
    "BusNotStarted",
    "BusSetup",
    "ConditionalEventHandler",
    "DeadLetter",
    "DeadLetterStore",
    "DeliveryError",
    "EventAggregator",
    "EventBus",
    "EventBusError",
    "EventHandler",
    "EventReplayer",
    "EventRoute",
    "FunctionEventHandler",
    "HandlerExists",
    "HandlerInUse",
    "HandlerSpec",
    "HandlerStats",
    "InvalidAggregation",
    "InvalidBusConfig",
    "InvalidHandler",
    "InvalidReplay",
    "InvalidRoute",
    "LogFileHandler",
    "LogTarget",
    "PartialDelivery",
    "PermanentDeliveryError",
    "PythonTarget",
    "RedriveOutcome",
    "ReplayRequest",
    "ReplayResult",
    "RetryPolicy",
    "RouteExists",
    "RouteTable",
    "Router",
    "UnknownAggregation",
    "UnknownDeadLetter",
    "UnknownHandler",
    "UnknownRoute",
    "WebhookHandler",
    "WebhookTarget",
    "resolve_callable",
]
