"""Running a node as an HTTP server (uvicorn), with Redis-style protected mode."""

from __future__ import annotations

import asyncio
import functools
import gc
import ipaddress
import logging
from typing import Any

import uvicorn

from ..errors import ConfigError
from ..node import Node
from ..settings import ServerSettings, Settings
from .app import KvdbApp, create_app

__all__ = ["check_protected_mode", "run_server", "serve", "uvicorn_config"]

log = logging.getLogger("kvdb.server")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_protected_mode(server: ServerSettings) -> None:
    """Refuse to serve a non-loopback address without tokens unless explicitly allowed."""
    if is_loopback(server.host) or server.tokens or server.allow_unauthenticated_remote:
        return
    raise ConfigError(
        f"refusing to listen on {server.host} without access control: anyone who can reach it "
        "could read and write every key. Configure server.tokens, bind 127.0.0.1, or set "
        "server.allow_unauthenticated_remote: true (--allow-unauthenticated-remote) if the "
        "network is trusted"
    )


def uvicorn_config(app: KvdbApp, **options: Any) -> uvicorn.Config:
    """uvicorn settings for a kvdb app: single-key requests on the fast protocol (when
    httptools is available, as with uvicorn[standard]), everything else as usual."""
    http: Any = "auto"
    try:
        from .fast_http import KvdbHttpProtocol
    except ImportError:  # pragma: no cover - uvicorn without httptools
        log.warning("httptools is not installed: /kv runs on the plain ASGI path")
    else:
        http = functools.partial(KvdbHttpProtocol, kv=app.kv)
    return uvicorn.Config(app, http=http, lifespan="on", server_header=False, **options)


async def run_server(settings: Settings) -> None:
    """Open the node (so start-up errors are reported plainly), then serve until stopped."""
    check_protected_mode(settings.server)
    logging.basicConfig(
        level=settings.server.log_level.upper(), format="%(levelname)-8s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # replication's requests, one a line
    node = Node(settings)
    await node.start()
    try:
        config = uvicorn_config(
            create_app(node),
            host=settings.server.host,
            port=settings.server.port,
            access_log=settings.server.access_log,
            log_level=settings.server.log_level,
        )
        server = uvicorn.Server(config)
        _tune_garbage_collector()
        log.info(
            "kvdb node %s serving %s on http://%s:%d",
            node.store.node_id,
            settings.node.data_dir,
            settings.server.host,
            settings.server.port,
        )
        await server.serve()
    finally:
        await node.stop()


def _tune_garbage_collector() -> None:
    """Move everything allocated at start-up out of the collector's sight and collect young
    objects less often: full collections over the app's long-lived objects otherwise pause
    the event loop for 15-20 ms about once a second under load."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def serve(settings: Settings) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        asyncio.run(run_server(settings))
    else:
        uvloop.run(run_server(settings))
