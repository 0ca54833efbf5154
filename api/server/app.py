"""The ASGI application of a node: ``/kv`` on the plain-ASGI hot path, the rest on FastAPI."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from changestream import ChangeStreamError
from compute import ComputeError
from eventbus import EventBusError
from kvdb import KvdbError
from sync import SyncError

from ..node import Node
from ..settings import Settings
from .auth import Role, TokenAuth
from .dependencies import require
from .errors import ApiError, error_body, error_response_parts
from .event_json import EventEncoder
from .kv import KVEndpoints, Receive, Scope, Send
from .kv_openapi import ERROR_SCHEMA, KV_PATHS
from .metrics import CONTENT_TYPE, HttpMetrics, build_registry, render_metrics
from .openapi_bodies import add_request_bodies
from .routers import admin, changes, docs, streams, ws
from .routers.bus import BusCollector, bus_summary
from .routers.bus import router as bus_router
from .routers.console import mount_console
from .routers.pipelines import PipelineCollector, pipeline_summary
from .routers.pipelines import router as pipelines_router
from .routers.sync import router as sync_router
from .sync_metrics import SyncCollector, sync_summary

__all__ = ["KvdbApp", "create_app"]


class KvdbApp:
    """Routes ``/kv`` and ``/kv/...`` to the key-value endpoints and everything else (including
    the lifespan, which starts and stops the node) to FastAPI."""

    def __init__(self, node: Node, api: FastAPI, kv: KVEndpoints) -> None:
        self.node = node
        self.api = api
        self.kv = kv

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == "/kv" or path.startswith("/kv/"):
                await self.kv(scope, receive, send)
                return
        await self.api(scope, receive, send)


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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await node.start()
        try:
            yield
        finally:
            await node.stop()

    api = FastAPI(
        title="kvdb",
        summary="A key-value database whose every committed write is a durable change event",
        version="0.1.0",
        lifespan=lifespan,
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

    @api.get("/metrics", tags=["operations"], dependencies=[require(Role.READ)])
    async def metrics() -> Response:
        """Prometheus text format."""
        return Response(render_metrics(registry), media_type=CONTENT_TYPE)

    api.openapi = _openapi_with_kv_paths(api)  # type: ignore[method-assign]
    return KvdbApp(node, api, KVEndpoints(node, auth, http))


def _stream_summary(stats: dict[str, Any]) -> dict[str, Any]:
    keys = ("delivered", "batches", "lag_events", "lag_ms")
    consumers = {
        c["name"]: {k: c[k] for k in ("state", "checkpoint", *keys)} for c in stats["consumers"]
    }
    return {**{k: stats[k] for k in keys}, "orphaned": stats["orphaned"], "consumers": consumers}


def _install_error_handlers(api: FastAPI) -> None:
    def respond(exc: Exception) -> Response:
        status, body, headers = error_response_parts(exc)
        return Response(body, status_code=status, media_type="application/json", headers=headers)

    async def on_error(request: Request, exc: Exception) -> Response:
        return respond(exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        return Response(error_body("bad_request", problems), 400, media_type="application/json")

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = (
            f"no route for {request.method} {request.url.path}"
            if code == "not_found"
            else str(exc.detail)
        )
        return Response(
            error_body(code, message),
            exc.status_code,
            media_type="application/json",
            headers=exc.headers,
        )

    api.add_exception_handler(ApiError, on_error)
    api.add_exception_handler(KvdbError, on_error)
    api.add_exception_handler(ChangeStreamError, on_error)
    api.add_exception_handler(EventBusError, on_error)
    api.add_exception_handler(ComputeError, on_error)
    api.add_exception_handler(SyncError, on_error)
    api.add_exception_handler(RequestValidationError, on_validation)
    api.add_exception_handler(StarletteHTTPException, on_http)


def _openapi_with_kv_paths(api: FastAPI) -> Callable[[], dict[str, Any]]:
    generate = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = generate()
            schema["paths"] = {**KV_PATHS, **schema["paths"]}
            schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
            add_request_bodies(schema)
            api.openapi_schema = schema
        return api.openapi_schema

    return openapi
