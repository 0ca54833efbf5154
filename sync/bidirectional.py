"""``BidirectionalSyncManager``: pair two nodes so each replicates to the other (A⇄B).

Each side is a ``SyncService`` in this process or the URL of a running node. An in-process
side gets a processor of its own (through ``LocalSyncTarget`` when the other side is in this
process too, over HTTP otherwise); a URL side is asked, through its ``/sync/processors`` API,
to replicate to the other's URL. ``stop`` removes what ``start`` made::

    async with BidirectionalSyncManager(node_a.sync, "http://10.0.0.2:8080"):
        ...

For a mesh of more nodes, pair each two (or declare ``sync:`` in every node's YAML).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from .config import SyncConfig, TargetConfig
from .errors import InvalidSyncConfig, TargetUnavailable
from .local import LocalSyncTarget
from .service import SyncService

__all__ = ["BidirectionalSyncManager"]

Side = SyncService | str


class BidirectionalSyncManager:
    def __init__(
        self,
        a: Side,
        b: Side,
        *,
        name: str = "pair",
        token: str | None = None,
        **options: Any,
    ) -> None:
        self.sides = (a, b)
        self.name = name
        self.token = token
        self.options = options  # further SyncConfig fields (policies, batch_size...)
        self._made: list[tuple[Side, str]] = []

    async def start(self) -> None:
        ids = [await self._node_id(side) for side in self.sides]
        for (me, my_id), (other, other_id) in ((
            (self.sides[0], ids[0]), (self.sides[1], ids[1])),
            ((self.sides[1], ids[1]), (self.sides[0], ids[0])),
        ):  # fmt: skip
            name = f"{self.name}-{other_id}"
            if isinstance(me, SyncService):
                await self._start_local(me, name, other, other_id)
            else:
                if not isinstance(other, str):
                    raise InvalidSyncConfig(
                        f"node {my_id!r} is reached by URL and cannot send to a node that "
                        "lives only in this process: give both as URLs, or run both here"
                    )
                await self._request(me, "POST", "/sync/processors",
                                    json=self._config(name, other_id, other).to_dict())  # fmt: skip
            self._made.append((me, name))

    async def _start_local(self, me: SyncService, name: str, other: Side, other_id: str) -> None:
        if isinstance(other, SyncService):
            config = self._config(name, other_id, None)
            await me.attach(config, {other_id: LocalSyncTarget(other.receiver)})
        else:
            await me.create(self._config(name, other_id, other))

    def _config(self, name: str, node_id: str, url: str | None) -> SyncConfig:
        endpoints = (url,) if url else ("http://in-process.invalid",)
        target = TargetConfig(node_id, endpoints, self.token)
        return SyncConfig(name, targets=(target,), **self.options)

    async def stop(self) -> None:
        made, self._made = self._made, []
        for side, name in reversed(made):
            if isinstance(side, SyncService):
                await side.remove(name)
            else:
                await self._request(side, "DELETE", f"/sync/processors/{name}")

    async def _node_id(self, side: Side) -> str:
        if isinstance(side, SyncService):
            return side.store.node_id
        doc = await self._request(side, "GET", "/health")
        return str(doc["node_id"])

    async def _request(self, url: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers) as http:
                response = await http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise TargetUnavailable(f"{url}{path}: {exc}") from None
        if response.status_code >= 400:
            raise TargetUnavailable(
                f"{method} {url}{path}: HTTP {response.status_code}: {response.text[:300]}"
            )
        doc: dict[str, Any] = response.json() if response.content else {}
        return doc

    async def __aenter__(self) -> BidirectionalSyncManager:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
