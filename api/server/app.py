"""The ASGI application of a node: ``/kv`` on the plain-ASGI hot path, the rest on FastAPI.

The app's lifespan is the one place that starts and stops the node, whoever serves the app
(``kvdb serve``, a test client, another ASGI server). A node that cannot start (bad settings,
a data dir another process holds) fails the start-up with its message alone, no traceback, and
the error is kept in ``startup_error`` for the caller to report (``kvdb serve`` exits with it).
"""

from __future__ import annotations

import functools
import re
import time
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from kvdb import StructuredError

from ..node import Node
from ..settings import Settings
from ..settings.problems import describe_validation_errors
from .auth import Role, TokenAuth
from .dependencies import require
from .draining import Draining
from .errors import BadRequest, MethodNotAllowed, NotFound, error_response_parts
from .event_json import EventEncoder
from .guard import CORS_HEADERS, RequestGuard
from .kv import KVEndpoints, Receive, Scope, Send
from .metrics import CONTENT_TYPE, HttpMetrics, build_registry, render_metrics
from .openapi import install_openapi
from .routers import admin, changes, docs, streams, ws
from .routers.bus import BusCollector, bus_summary
from .routers.bus import router as bus_router
from .routers.console import mount_console
from .routers.pipelines import PipelineCollector, pipeline_summary
from .routers.pipelines import router as pipelines_router
from .routers.sync import router as sync_router
from .routers.ws_consumers import ConsumerHolders
from .sync_metrics import SyncCollector, sync_summary

__all__ = ["KvdbApp", "create_app"]

_FEEDS_END_S = 2.0  # how long a shutdown waits for feeds to send their final message


class KvdbApp:
    """Routes ``/kv`` and ``/kv/...`` to the key-value endpoints and everything else to
    FastAPI, once the request guard (``guard.py``) let it through, with CORS for the
    configured origins; the lifespan starts the node and stops it."""

    def __init__(self, node: Node, api: FastAPI, kv: KVEndpoints) -> None:
        self.node = node
        self.api = api
        self.kv = kv
        self.guard = kv.guard
        self.draining: Draining = api.state.draining
        self.startup_error: StructuredError | None = None
        self._serve: Any = self._route
        if self.guard.cors_origins:
            self._serve = CORSMiddleware(
                self._route, allow_origins=sorted(self.guard.cors_origins), **CORS_HEADERS
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        refusal = self.guard.refusal(scope)
        if refusal is not None:
            await _refuse(scope, send, refusal)
            return
        await self._serve(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == "/kv" or path.startswith("/kv/"):
                await self.kv(scope, receive, send)
                return
        await self.api(scope, receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """The ASGI lifespan protocol: start the node, then stop it at shutdown. A failure is
        reported to the server (``...failed``), then raised for the server to end with."""
        await receive()  # lifespan.startup
        try:
            await self.node.start()
        except Exception as exc:
            if isinstance(exc, StructuredError):
                self.startup_error = exc
            await send({"type": "lifespan.startup.failed", "message": _failure(exc)})
            raise
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        self.draining.begin()  # feeds end (uvicorn has ended them already: run.NodeServer)
        await self.draining.idle(_FEEDS_END_S)
        try:
            await self.node.stop()
        except Exception as exc:
            await send({"type": "lifespan.shutdown.failed", "message": _failure(exc)})
            raise
        await send({"type": "lifespan.shutdown.complete"})


async def _refuse(scope: Scope, send: Send, exc: Exception) -> None:
    """Answer a request the guard refused with the error document; a WebSocket handshake
    gets it as an HTTP response where the server can send one (else a close: 403)."""
    status, body, _ = error_response_parts(exc)
    start = {"status": status, "headers": [(b"content-type", b"application/json"),
                                           (b"content-length", b"%d" % len(body))]}  # fmt: skip
    if scope["type"] == "http":
        await send({"type": "http.response.start", **start})
        await send({"type": "http.response.body", "body": body})
    elif "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", **start})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


def _failure(exc: Exception) -> str:
    """Our errors say what is wrong and how to fix it; anything else is a bug: its traceback."""
    if isinstance(exc, StructuredError):
        return f"the node cannot start: {exc.message}"
    return traceback.format_exc()


def create_app(node: Node | Settings | None = None) -> KvdbApp:
    """The ASGI app for ``node`` (or a new node built from settings, or from the defaults).
    The app's lifespan starts the node and stops it on shutdown."""
    if not isinstance(node, Node):
        node = Node(node)
    http = HttpMetrics()
    started_at = time.time()
    registry = build_registry(node, http)
    registry.register(BusCollector(node))
    registry.register(PipelineCollector(node))
    registry.register(SyncCollector(node))
    api = FastAPI(
        title="kvdb",
        summary="A key-value database whose every committed write is a durable change event",
        version="0.1.0",
        docs_url=None,  # served from the package by routers/docs.py, so they work offline
        redoc_url=None,
    )
    auth = TokenAuth(
        (t.token.get_secret_value(), Role[t.role.upper()]) for t in node.settings.server.tokens
    )
    api.state.node = node
    api.state.auth = auth
    api.state.http_metrics = http
    api.state.event_encoder = EventEncoder()
    api.state.draining = Draining()
    api.state.ws_consumers = ConsumerHolders()
    _install_error_handlers(api)
    api.include_router(changes.router)
    api.include_router(ws.router)
    api.include_router(streams.router)
    api.include_router(bus_router)
    api.include_router(pipelines_router)
    api.include_router(sync_router)
    api.include_router(admin.router)
    api.include_router(docs.router)
    mount_console(api)

    @api.get("/health", tags=["operations"])
    async def health() -> dict[str, Any]:
        """Liveness and the last committed seq. Needs no token."""
        return {"status": "ok", "node_id": node.store.node_id, "last_seq": node.store.last_seq}

    @api.get("/stats", tags=["operations"], dependencies=[require(Role.READ)])
    async def stats() -> dict[str, Any]:
        store = node.store.stats()
        writer = store.writer
        return {
            "node_id": store.node_id,
            **admin.node_summary(node, started_at),
            "last_seq": store.last_seq,
            "oldest_seq": store.oldest_seq,
            "log_events": store.log_events,
            "records": store.records,
            "map_size": store.map_size,
            "writer": {
                "commits": writer.commits,
                "failed_commits": writer.failed_commits,
                "failed_writes": writer.failed_tasks,
                "write_requests": writer.tasks,
                "events": writer.events,
                "mean_group_size": writer.tasks / writer.commits if writer.commits else 0.0,
                "mean_commit_ms": 1000 * writer.commit_seconds.sum / writer.commits
                if writer.commits
                else 0.0,
            },
            "http": {f"{op} {status}": n for (op, status), n in sorted(http.requests.items())},
            "subscribers": node.streams.subscriber_count,
            "streams": {
                stream.name: _stream_summary(stream.stats()) for stream in node.streams.list()
            },
            "bus": bus_summary(node),
            "sync": sync_summary(node),
            "pipelines": pipeline_summary(node),
            "orphaned": [orphan.to_dict() for orphan in node.orphans()],
        }

    @api.get(
        "/metrics",
        tags=["operations"],
        dependencies=[require(Role.READ)],
        response_class=PlainTextResponse,
    )
    async def metrics() -> Response:
        """Prometheus text format."""
        return Response(render_metrics(registry), media_type=CONTENT_TYPE)

    install_openapi(api)
    guard = RequestGuard(node.settings.server)
    return KvdbApp(node, api, KVEndpoints(node, auth, http, guard))


def _stream_summary(stats: dict[str, Any]) -> dict[str, Any]:
    keys = ("delivered", "batches", "lag_events", "lag_ms")
    consumers = {
        c["name"]: {k: c[k] for k in ("state", "checkpoint", *keys)} for c in stats["consumers"]
    }
    return {**{k: stats[k] for k in keys}, "orphaned": stats["orphaned"], "consumers": consumers}


def _install_error_handlers(api: FastAPI) -> None:
    """One handler for every error: the framework's own become ours (a request that does not
    validate, a path with no route), then ``error_response_parts`` decides the response."""

    async def on_error(request: Request, exc: Exception) -> Response:
        status, body, headers = error_response_parts(_from_framework(request, exc))
        return Response(body, status_code=status, media_type="application/json", headers=headers)

    for kind in (StructuredError, RequestValidationError, StarletteHTTPException):
        api.add_exception_handler(kind, on_error)


def _from_framework(request: Request, exc: Exception) -> Exception:
    if isinstance(exc, RequestValidationError):
        return BadRequest("; ".join(describe_validation_errors(exc.errors())))
    if isinstance(exc, StarletteHTTPException):
        allow = (exc.headers or {}).get("Allow")
        if exc.status_code == 404:
            return NotFound(f"no route for {request.method} {request.url.path}")
        if exc.status_code == 405 and allow is not None:
            allow = _allowed_methods(request) or allow
            return MethodNotAllowed(
                f"{request.method} {request.url.path}: use {allow}", allow=allow
            )
    return exc


def _allowed_methods(request: Request) -> str:
    """Every method the path has an operation for, from the OpenAPI document (Starlette's
    405 names only the first route's); HEAD with GET."""
    path = request.scope["path"]
    methods: set[str] = set()
    for template, item in request.app.openapi()["paths"].items():
        if _template(template).fullmatch(path):
            methods |= {method.upper() for method in item if method in _METHODS}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


_METHODS = frozenset({"get", "put", "post", "delete", "patch"})


@functools.cache
def _template(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)))
