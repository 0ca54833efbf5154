"""The HTTP server of a node: the ASGI app, one router module per endpoint family, the fast
``/kv`` protocol, authentication, metrics, and the one table that maps errors to HTTP."""

from __future__ import annotations

from .app import KvdbApp, create_app
from .run import run_server, serve

__all__ = ["KvdbApp", "create_app", "run_server", "serve"]
