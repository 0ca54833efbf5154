"""Stream computing over HTTP: ``POST /sql``, ``/pipelines``, and ``WS /ws/pipelines/{name}``.

| method and path | what |
| --- | --- |
| ``POST /sql`` | a script (text, or JSON ``{"sql": ...}``); ``{"results": [...]}`` per statement |
| ``GET /pipelines`` | every pipeline with its figures |
| ``GET /pipelines/{name}`` | one pipeline: figures, and its SQL if it has some |
| ``GET /pipelines/{name}/results`` | ``{"columns": [...], "rows": [{...}]}``, timestamps ISO-8601 |
| ``DELETE /pipelines/{name}`` | stop it and delete its state (an orphan's too) |
| ``WS /ws/pipelines/{name}`` | ``snapshot`` (the table), then ``updates`` per processed batch |

Listings show each pipeline's ``owner`` (null: made through the API or by a program) and
whether it is ``orphaned``: declared by the configuration file, which no longer declares it;
an orphan is stopped, its results readable (``compute/declare.py``). Mutations need the admin
role, reads the read role. The WebSocket sends JSON text frames:
``{"type": "snapshot", "columns", "rows"}`` first, then ``{"type": "updates", "updates":
[{"op": "upsert" | "delete" | "record", "row": {...}}]}``; a client that falls too far behind,
or a pipeline that stops, ends with ``{"type": "error", ...}`` and a close (code 4008 when the
client was too slow: reconnect for a fresh snapshot).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import orjson
from fastapi import APIRouter, Request, WebSocket
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from compute import ComputeError, PipelineProcessor, UpdateSubscription
from compute.results import render_row

from ...errors import ApiError
from ...node import Node
from ..auth import Role
from ..dependencies import auth_of, authorization_of, node_of, require
from ..errors import BadRequest
from ..metrics import StatFamilies
from .ws_session import CLOSE_ENDED, CLOSE_SLOW_CONSUMER, SessionClosed, WebSocketSession

__all__ = ["PipelineCollector", "pipeline_summary", "router"]

router = APIRouter(tags=["pipelines"])

MAX_SCRIPT_BYTES = 1024 * 1024


@router.post("/sql", dependencies=[require(Role.ADMIN)])
async def run_sql(request: Request) -> dict[str, Any]:
    """Run a SQL script: CREATE STREAM, CREATE PIPELINE, DROP, SHOW. The body is the script
    (any text content type) or JSON ``{"sql": "..."}``. All statements are planned before any
    applies: an error applies nothing and names the line and column."""
    body = await request.body()
    if len(body) > MAX_SCRIPT_BYTES:
        raise BadRequest(f"the script exceeds {MAX_SCRIPT_BYTES} bytes; send it in parts")
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BadRequest('a JSON body must be {"sql": "<script>"}') from None
        if not isinstance(doc, dict) or not isinstance(doc.get("sql"), str):
            raise BadRequest('a JSON body must be {"sql": "<script>"}')
        script = doc["sql"]
    else:
        try:
            script = body.decode()
        except UnicodeDecodeError:
            raise BadRequest("the script must be UTF-8 text") from None
    results = await node_of(request).compute.sql.execute(script)
    return {"results": [result.to_json() for result in results]}


@router.get("/pipelines", dependencies=[require(Role.READ)])
async def list_pipelines(request: Request) -> dict[str, Any]:
    return {"pipelines": [processor.stats() for processor in node_of(request).compute.list()]}


@router.get("/pipelines/{name}", dependencies=[require(Role.READ)])
async def get_pipeline(request: Request, name: str) -> dict[str, Any]:
    processor = node_of(request).compute.get(name)
    return {**processor.stats(), "sql": processor.sql}


@router.get("/pipelines/{name}/results", dependencies=[require(Role.READ)])
async def pipeline_results(request: Request, name: str) -> dict[str, Any]:
    """The results table: a row per group key and window, timestamps as ISO-8601 UTC."""
    return node_of(request).compute.get(name).results().to_json()


@router.delete("/pipelines/{name}", dependencies=[require(Role.ADMIN)])
async def delete_pipeline(request: Request, name: str) -> dict[str, Any]:
    """Stop the pipeline and delete its state and checkpoint (a SQL pipeline's definition
    too), releasing the change-log retention it held. A pipeline the node's YAML still
    declares comes back at the next start; an orphaned one is gone for good."""
    await node_of(request).compute.remove(name)
    return {"name": name, "deleted": True}


@router.websocket("/ws/pipelines/{name}")
async def pipeline_updates(websocket: WebSocket, name: str) -> None:
    await websocket.accept()
    with contextlib.suppress(SessionClosed):
        await _UpdatesSession(websocket, name).run()


class _UpdatesSession(WebSocketSession):
    """A snapshot of the results table, then its updates as they happen."""

    def __init__(self, websocket: WebSocket, name: str) -> None:
        self.name = name
        self.node = node_of(websocket)
        super().__init__(websocket, self.node.settings.server.subscriptions.stall_timeout / 1000)

    async def run(self) -> None:
        try:
            auth_of(self.ws).check(authorization_of(self.ws), Role.READ)
            processor = self.node.compute.get(self.name)
        except (ApiError, ComputeError) as exc:
            await self.fail(exc)
            return
        subscription = processor.subscribe()  # then the snapshot: no batch runs in between
        try:
            table = processor.results().to_json()
            await self.send(orjson.dumps({"type": "snapshot", **table}))
            await self.converse(self._send_updates(processor, subscription), self._receive())
        finally:
            subscription.close()

    async def _send_updates(
        self, processor: PipelineProcessor, subscription: UpdateSubscription
    ) -> None:
        stamps = [c.name for c in processor.runtime.columns if c.type == "timestamp"]
        while True:
            updates = await subscription.next()
            if updates is None:
                if subscription.overflowed:
                    await self.send(_error("overflow", "too far behind; reconnect for a snapshot"))
                    await self.close(CLOSE_SLOW_CONSUMER, "slow_consumer")
                else:
                    reason = processor.error.message if processor.error else "pipeline stopped"
                    await self.send(_error("pipeline_stopped", reason))
                    await self.close(CLOSE_ENDED, "pipeline_stopped")
                return
            rows = [
                {"op": update.op, "row": render_row(update.row, ["time", *stamps])}
                for update in updates
            ]
            await self.send(orjson.dumps({"type": "updates", "updates": rows}, default=str))

    async def _receive(self) -> None:
        while True:
            try:
                doc = await self.receive_json()
            except BadRequest as exc:
                await self.send_error(exc)
                continue
            if not await self.answer_ping(doc):
                await self.send(_error("bad_message", 'the only message is {"type": "ping"}'))


def _error(code: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "code": code, "message": message})


_SUMMARY = (
    "status", "events_in", "invalid", "late_dropped", "windows_fired", "late_updates",
    "lag_events", "lag_ms", "watermark", "checkpoint_seq",
)  # fmt: skip


def pipeline_summary(node: Node) -> dict[str, Any]:
    """The pipelines' part of ``GET /stats``."""
    return {
        name: {key: stats[key] for key in _SUMMARY} for name, stats in node.compute.stats().items()
    }


class PipelineCollector(Collector):
    """Per-pipeline metrics, read from the pipelines when scraped."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        if not self.node.started:
            return
        counters = {
            "events_in": "Records the pipeline's sources accepted",
            "invalid": "Change events skipped as invalid records (not JSON, no event time...)",
            "late_dropped": "Records dropped for arriving later than the allowed lateness",
            "windows_fired": "Windows (per key) closed by the watermark",
            "late_updates": "Late records (within the allowed lateness) that updated a window",
        }
        families = StatFamilies(
            "kvdb_pipeline",
            ["pipeline"],
            counters,
            gauges={
                "lag_events": "Committed events not yet processed",
                "lag_seconds": "Age of the oldest unprocessed event",
                "open_windows": "Windows not yet closed",
                "failed": "1 if a callback failed and the pipeline stopped",
            },
        )
        for name, stats in self.node.compute.stats().items():
            families.add(
                [name],
                {
                    **{key: stats[key] for key in counters},
                    "lag_events": stats["lag_events"],
                    "lag_seconds": stats["lag_ms"] / 1000,
                    "open_windows": stats["open_windows"],
                    "failed": 1 if stats["status"] == "failed" else 0,
                },
            )
        yield from families
