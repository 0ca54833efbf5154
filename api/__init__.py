"""kvdb's outer layer: HTTP API, settings, the composition root, the client and the CLI."""

from __future__ import annotations

from .app import create_app
from .node import Node
from .settings import NodeSettings, ServerSettings, Settings, load_settings

__all__ = ["Node", "NodeSettings", "ServerSettings", "Settings", "create_app", "load_settings"]
