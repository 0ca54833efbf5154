"""The rest of the HTTP API for the clients: streams, the event bus, pipelines and SQL,
replication status, and stats. Each call returns the server's JSON document (a dict, or the
list inside it), so a script sees exactly what the CLI and the console see.

The requests are built once here (``Requests``); ``AdminCalls`` and ``AsyncAdminCalls`` are
the blocking and asyncio faces that ``Client`` and ``AsyncClient`` inherit.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any
from urllib.parse import quote

import httpx

from .errors import NotFound, raise_for_error

__all__ = ["AdminCalls", "AsyncAdminCalls", "NoReplication", "Requests"]

Request = dict[str, Any]


class NoReplication(NotFound):
    """The node has no replication endpoints (``/sync/...`` answered 404)."""


def _name(name: str) -> str:
    return quote(name, safe="")


def _params(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None and v is not False}


class Requests:
    """Request descriptions (``httpx.Client.request`` keyword arguments)."""

    @staticmethod
    def get(url: str, **params: Any) -> Request:
        return {"method": "GET", "url": url, "params": _params(**params)}

    @staticmethod
    def send(method: str, url: str, body: Any = None, **params: Any) -> Request:
        request: Request = {"method": method, "url": url, "params": _params(**params)}
        if body is not None:
            request["json"] = body
        return request

    @staticmethod
    def sql(script: str) -> Request:
        return {"method": "POST", "url": "/sql", "json": {"sql": script}}


def _doc(response: httpx.Response) -> dict[str, Any]:
    raise_for_error(response)
    doc: dict[str, Any] = response.json()
    return doc


def _sync_doc(response: httpx.Response) -> dict[str, Any]:
    if response.status_code == 404 and "/sync/" in str(response.request.url):
        raise NoReplication(
            404,
            "no_replication",
            "this node has no replication (GET /sync/status is not served): upgrade it to a "
            "version with sync, or check --url",
        )
    return _doc(response)


R = Requests


class AdminCalls:
    """Blocking calls; the class using it provides ``_send(request) -> httpx.Response``."""

    def _send(self, request: Request) -> httpx.Response:
        raise NotImplementedError

    def _call(self, request: Request) -> dict[str, Any]:
        return _doc(self._send(request))

    # -- operations --
    def stats(self) -> dict[str, Any]:
        return self._call(R.get("/stats"))

    # -- streams --
    def streams(self) -> list[dict[str, Any]]:
        streams: list[dict[str, Any]] = self._call(R.get("/streams"))["streams"]
        return streams

    def stream(self, name: str) -> dict[str, Any]:
        return self._call(R.get(f"/streams/{_name(name)}"))

    def stream_stats(self, name: str) -> dict[str, Any]:
        return self._call(R.get(f"/streams/{_name(name)}/stats"))

    def put_stream(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        return self._call(R.send("PUT", f"/streams/{_name(name)}", config))

    def delete_stream(self, name: str) -> dict[str, Any]:
        return self._call(R.send("DELETE", f"/streams/{_name(name)}"))

    # -- event bus --
    def handlers(self) -> list[dict[str, Any]]:
        handlers: list[dict[str, Any]] = self._call(R.get("/bus/handlers"))["handlers"]
        return handlers

    def handler(self, name: str) -> dict[str, Any]:
        return self._call(R.get(f"/bus/handlers/{_name(name)}"))

    def put_handler(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self._call(R.send("PUT", f"/bus/handlers/{_name(name)}", spec))

    def delete_handler(self, name: str) -> dict[str, Any]:
        return self._call(R.send("DELETE", f"/bus/handlers/{_name(name)}"))

    def routes(self) -> list[dict[str, Any]]:
        routes: list[dict[str, Any]] = self._call(R.get("/bus/routes"))["routes"]
        return routes

    def route(self, name: str) -> dict[str, Any]:
        return self._call(R.get(f"/bus/routes/{_name(name)}"))

    def put_route(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self._call(R.send("PUT", f"/bus/routes/{_name(name)}", spec))

    def delete_route(self, name: str) -> dict[str, Any]:
        return self._call(R.send("DELETE", f"/bus/routes/{_name(name)}"))

    def dead_letters(
        self, handler: str | None = None, *, after: str | None = None, limit: int = 100
    ) -> dict[str, Any]:
        """A page: ``{"dead_letters": [...], "next": after-cursor or None, "counts": {...}}``."""
        return self._call(R.get("/bus/dead-letters", handler=handler, after=after, limit=limit))

    def dead_letter(self, handler: str, seq: int) -> dict[str, Any]:
        return self._call(R.get(f"/bus/dead-letters/{_name(handler)}/{seq}"))

    def redrive(self, handler: str, seq: int) -> dict[str, Any]:
        return self._call(R.send("POST", f"/bus/dead-letters/{_name(handler)}/{seq}/redrive"))

    def redrive_all(self, handler: str | None = None, *, limit: int = 100) -> dict[str, Any]:
        body = _params(handler=handler, limit=limit)
        return self._call(R.send("POST", "/bus/dead-letters/redrive", body))

    def delete_dead_letter(self, handler: str, seq: int) -> dict[str, Any]:
        return self._call(R.send("DELETE", f"/bus/dead-letters/{_name(handler)}/{seq}"))

    def purge_dead_letters(self, handler: str | None = None) -> int:
        """Delete the dead letters of ``handler``, or all of them if it is None."""
        request = R.send("DELETE", "/bus/dead-letters", handler=handler, all=handler is None)
        purged: int = self._call(request)["purged"]
        return purged

    def replay(self, **request: Any) -> dict[str, Any]:
        """``POST /bus/replay``: ``handler`` or ``route``, ``from_seq``/``to_seq`` or
        ``from_ts``/``to_ts``, ``event_types``, ``key_patterns``, ``dry_run``, ``limit``."""
        return self._call(R.send("POST", "/bus/replay", _params(**request)))

    def aggregates(self, name: str | None = None) -> list[dict[str, Any]]:
        aggregations: list[dict[str, Any]] = self._call(R.get("/bus/aggregates", name=name))[
            "aggregations"
        ]
        return aggregations

    # -- stream computing --
    def sql(self, script: str) -> list[dict[str, Any]]:
        """Run a SQL script; one result per statement."""
        results: list[dict[str, Any]] = self._call(R.sql(script))["results"]
        return results

    def pipelines(self) -> list[dict[str, Any]]:
        pipelines: list[dict[str, Any]] = self._call(R.get("/pipelines"))["pipelines"]
        return pipelines

    def pipeline(self, name: str) -> dict[str, Any]:
        return self._call(R.get(f"/pipelines/{_name(name)}"))

    def pipeline_results(self, name: str) -> dict[str, Any]:
        return self._call(R.get(f"/pipelines/{_name(name)}/results"))

    def delete_pipeline(self, name: str) -> dict[str, Any]:
        return self._call(R.send("DELETE", f"/pipelines/{_name(name)}"))

    # -- replication --
    def sync_status(self) -> dict[str, Any]:
        """Raises ``NoReplication`` if the node does not replicate."""
        return _sync_doc(self._send(R.get("/sync/status")))

    def sync_conflicts(self, **params: Any) -> dict[str, Any]:
        return _sync_doc(self._send(R.get("/sync/conflicts", **params)))


class AsyncAdminCalls:
    """The same calls for asyncio; the class using it provides ``async _send``."""

    def _send(self, request: Request) -> Awaitable[httpx.Response]:
        raise NotImplementedError

    async def _call(self, request: Request) -> dict[str, Any]:
        return _doc(await self._send(request))

    async def stats(self) -> dict[str, Any]:
        return await self._call(R.get("/stats"))

    async def streams(self) -> list[dict[str, Any]]:
        streams: list[dict[str, Any]] = (await self._call(R.get("/streams")))["streams"]
        return streams

    async def stream_stats(self, name: str) -> dict[str, Any]:
        return await self._call(R.get(f"/streams/{_name(name)}/stats"))

    async def put_stream(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        return await self._call(R.send("PUT", f"/streams/{_name(name)}", config))

    async def delete_stream(self, name: str) -> dict[str, Any]:
        return await self._call(R.send("DELETE", f"/streams/{_name(name)}"))

    async def handlers(self) -> list[dict[str, Any]]:
        handlers: list[dict[str, Any]] = (await self._call(R.get("/bus/handlers")))["handlers"]
        return handlers

    async def put_handler(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return await self._call(R.send("PUT", f"/bus/handlers/{_name(name)}", spec))

    async def routes(self) -> list[dict[str, Any]]:
        routes: list[dict[str, Any]] = (await self._call(R.get("/bus/routes")))["routes"]
        return routes

    async def put_route(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return await self._call(R.send("PUT", f"/bus/routes/{_name(name)}", spec))

    async def dead_letters(
        self, handler: str | None = None, *, after: str | None = None, limit: int = 100
    ) -> dict[str, Any]:
        request = R.get("/bus/dead-letters", handler=handler, after=after, limit=limit)
        return await self._call(request)

    async def redrive(self, handler: str, seq: int) -> dict[str, Any]:
        url = f"/bus/dead-letters/{_name(handler)}/{seq}/redrive"
        return await self._call(R.send("POST", url))

    async def replay(self, **request: Any) -> dict[str, Any]:
        return await self._call(R.send("POST", "/bus/replay", _params(**request)))

    async def sql(self, script: str) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = (await self._call(R.sql(script)))["results"]
        return results

    async def pipelines(self) -> list[dict[str, Any]]:
        pipelines: list[dict[str, Any]] = (await self._call(R.get("/pipelines")))["pipelines"]
        return pipelines

    async def pipeline_results(self, name: str) -> dict[str, Any]:
        return await self._call(R.get(f"/pipelines/{_name(name)}/results"))

    async def sync_status(self) -> dict[str, Any]:
        return _sync_doc(await self._send(R.get("/sync/status")))

    async def sync_conflicts(self, **params: Any) -> dict[str, Any]:
        return _sync_doc(await self._send(R.get("/sync/conflicts", **params)))
