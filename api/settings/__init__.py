"""Node settings: the YAML file (``loader``) and one model per section, turned into the typed,
frozen config objects the packages take. Only this package reads YAML."""

from __future__ import annotations

from .bus import AggregationSettings, HandlerSettings, RouteSettings
from .loader import load_settings
from .node import LimitSettings, NodeSettings, RetentionSettings
from .pipelines import PipelineSettings
from .root import Settings
from .server import ServerSettings, SubscriptionSettings, TokenSettings
from .streams import StreamSettings

__all__ = [
    "AggregationSettings",
    "HandlerSettings",
    "LimitSettings",
    "NodeSettings",
    "PipelineSettings",
    "RetentionSettings",
    "RouteSettings",
    "ServerSettings",
    "Settings",
    "StreamSettings",
    "SubscriptionSettings",
    "TokenSettings",
    "load_settings",
]
