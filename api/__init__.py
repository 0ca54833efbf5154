"""kvdb's edge: the HTTP server (``server``), the settings (``settings``, the only reader of
YAML), the Python client (``client``), the command line (``cli``) and the composition root
``Node``, which builds a node's parts from settings."""

from __future__ import annotations

from .errors import ApiError, ConfigError, NodeNotStarted
from .node import Node
from .server import create_app
from .settings import NodeSettings, ServerSettings, Settings, load_settings

__all__ = [
    "ApiError",
    "ConfigError",
    "Node",
    "NodeNotStarted",
    "NodeSettings",
    "ServerSettings",
    "Settings",
    "create_app",
    "load_settings",
]
