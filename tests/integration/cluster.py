"""Replication clusters for the multi-process tests: real ``kvdb serve --config`` nodes on
loopback, each directed link through a ``LinkProxy`` the test controls (REPLICATION 6).

    cluster = Cluster(tmp_path, proxies)
    a, b = cluster.node("a"), cluster.node("b")
    cluster.link(a, b)          # a -> b through a proxy (and b -> a: cluster.link(b, a))
    cluster.start()
    await a.put("k", "v")
    state = await converged([a, b])

A node's YAML is written at every start from its ``node_options``, ``sync_options`` and
links, so a test changes them and restarts. ``converged`` waits until every sync target
reports no lag and then compares every node's versioned scan (tombstones included).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from api.client import AsyncClient
from kvdb import Delete
from tests.integration.conftest import ServerProcess
from tests.integration.proxy import LinkProxy, ProxyLoop
from tests.integration.rawhttp import RawWriter

__all__ = ["FAST_SYNC", "Cluster", "ClusterNode", "converged"]

# Short timeouts and delays so faults are noticed, and recovered from, within a test's time.
FAST_SYNC: dict[str, Any] = {
    "max_retry_count": 2,
    "retry_delay": "20ms",
    "max_retry_delay": "300ms",
    "health_check_interval": "200ms",
    "request_timeout": "1s",
    "batch_size": 500,
}


class ClusterNode:
    """One node: its process, its YAML, its outgoing links, and HTTP helpers."""

    def __init__(self, cluster: Cluster, node_id: str) -> None:
        self.cluster = cluster
        self.id = node_id
        self.dir = cluster.root / node_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.dir / "kvdb.yaml"
        self.node_options: dict[str, Any] = {"durability": "async"}
        self.sync_options: dict[str, Any] = dict(FAST_SYNC)
        self.env: dict[str, str] = {}
        self.links: dict[str, list[LinkProxy]] = {}  # target node id -> proxies (endpoints)
        self.process = ServerProcess(self.dir / "data", node_id=node_id, config=self.config_path)
        self._http: httpx.AsyncClient | None = None
        self._kv: AsyncClient | None = None
        self._raw: RawWriter | None = None

    def __repr__(self) -> str:
        return f"ClusterNode({self.id} :{self.port})"

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def url(self) -> str:
        return self.process.url

    # -- the process ------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "node": {"id": self.id, **self.node_options},
            "server": {"log_level": "warning"},
        }
        if self.links:
            targets = [
                {"node_id": target, "endpoints": [proxy.url for proxy in proxies]}
                for target, proxies in self.links.items()
            ]
            doc["sync"] = [{"name": "repl", "targets": targets, **self.sync_options}]
        return doc

    def start(self) -> ClusterNode:
        self.spawn()
        self.process.wait_healthy(timeout=60)
        return self

    def spawn(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self.process.env = dict(self.env)
        self.process.spawn()

    def stop(self) -> None:
        """SIGTERM: a clean shutdown."""
        self._forget_connections()
        self.process.stop()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self._forget_connections()
        self.process.kill()

    def restart(self) -> ClusterNode:
        self.stop()
        return self.start()

    def wipe(self) -> None:
        """Lose the data directory (the node must be stopped); ``start`` then makes a new
        store, with a new epoch, under the same node id."""
        assert not self.process.running, "stop or kill the node before wiping it"
        shutil.rmtree(self.process.data_dir, ignore_errors=True)

    def _forget_connections(self) -> None:
        # Their connections die with the process; the next request opens new ones.
        self._http, self._kv, self._raw = None, None, None

    # -- HTTP -------------------------------------------------------------------------------

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(base_url=self.url, timeout=30)
            self.cluster.clients.append(self._http)
        return self._http

    @property
    def kv(self) -> AsyncClient:
        if self._kv is None:
            self._kv = AsyncClient(self.url, timeout=30)
            self.cluster.kv_clients.append(self._kv)
        return self._kv

    @property
    def raw(self) -> RawWriter:
        """A lean writer for many writes (tests/integration/rawhttp.py)."""
        if self._raw is None:
            self._raw = RawWriter(self.url)
            self.cluster.raw_writers.append(self._raw)
        return self._raw

    async def get_json(self, path: str, **params: Any) -> Any:
        response = await self.http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    async def put(self, key: str, value: str | bytes) -> str:
        """Write ``key``; returns the new version."""
        return str((await self.kv.put(key, value)).version)

    async def delete(self, key: str) -> str | None:
        """Delete ``key``; returns the tombstone's version (None: there was no key)."""
        result = (await self.kv.batch([Delete(key)])).results[0]
        return None if result is None else str(result.version)

    async def value(self, key: str) -> bytes | None:
        item = await self.kv.get(key)
        return None if item is None else item.value

    async def status(self) -> dict[str, Any]:
        doc: dict[str, Any] = await self.get_json("/sync/status")
        return doc

    async def targets(self) -> dict[str, dict[str, Any]]:
        """node id -> the status of this node's sync target for it."""
        status = await self.status()
        return {t["node_id"]: t for p in status["processors"] for t in p["targets"]}

    async def target(self, node_id: str) -> dict[str, Any]:
        return (await self.targets())[node_id]

    async def changes(self, since: int = 0) -> list[dict[str, Any]]:
        """Every change-log event after ``since``, reserved keys included."""
        events: list[dict[str, Any]] = []
        while True:
            page = await self.get_json("/changes", since=since, limit=10_000)
            events.extend(page["events"])
            if not page["events"]:
                return events
            since = page["last_seq"]

    async def replicated_changes(self, since: int = 0) -> list[dict[str, Any]]:
        """The change-log events of replicated keys (reserved ``_`` keys left out)."""
        return [e for e in await self.changes(since) if not e["key"].startswith("_")]

    async def snapshot(self) -> list[dict[str, Any]]:
        """The versioned state: every key in order, tombstones included."""
        items: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 10_000}
            if after is not None:
                params["after"] = after
            page = await self.get_json("/sync/snapshot", **params)
            items.extend(page["items"])
            after = page["next"]
            if after is None:
                return items

    async def conflicts(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        since = 0
        while True:
            page = await self.get_json("/sync/conflicts", since=since, limit=1000)
            records.extend(page["conflicts"])
            if not page["conflicts"]:
                return records
            since = page["last_seq"]

    async def stats(self) -> dict[str, Any]:
        doc: dict[str, Any] = await self.get_json("/stats")
        return doc


class Cluster:
    def __init__(self, root: Path, proxies: ProxyLoop) -> None:
        self.root = root
        self.proxies = proxies
        self.nodes: dict[str, ClusterNode] = {}
        self.all_links: list[LinkProxy] = []
        self.clients: list[httpx.AsyncClient] = []
        self.kv_clients: list[AsyncClient] = []
        self.raw_writers: list[RawWriter] = []

    def node(self, node_id: str, **sync_options: Any) -> ClusterNode:
        node = ClusterNode(self, node_id)
        node.sync_options.update(sync_options)
        self.nodes[node_id] = node
        return node

    def link(self, source: ClusterNode, target: ClusterNode, *, endpoints: int = 1) -> LinkProxy:
        """Make ``source`` replicate to ``target`` through ``endpoints`` proxies (the later
        ones are failover addresses); returns the first."""
        proxies = [
            LinkProxy(self.proxies, target.port, f"{source.id}->{target.id}#{i}")
            for i in range(endpoints)
        ]
        source.links.setdefault(target.id, []).extend(proxies)
        self.all_links.extend(proxies)
        return proxies[0]

    def proxy(self, source: ClusterNode, target: ClusterNode, index: int = 0) -> LinkProxy:
        return source.links[target.id][index]

    def mesh(self, *nodes: ClusterNode) -> None:
        for source in nodes:
            for target in nodes:
                if source is not target:
                    self.link(source, target)

    def start(self) -> None:
        """Start every node, in parallel."""
        for node in self.nodes.values():
            node.spawn()
        for node in self.nodes.values():
            node.process.wait_healthy(timeout=60)

    def partition(self, side: list[ClusterNode], other: list[ClusterNode]) -> None:
        """Blackhole every link between the two sides, both ways."""
        for proxy in self._between(side, other):
            proxy.blackhole()

    def heal(self) -> None:
        for proxy in self.all_links:
            proxy.passing()
            proxy.delay(0)

    def _between(self, side: list[ClusterNode], other: list[ClusterNode]) -> list[LinkProxy]:
        found = []
        for a in side:
            for b in other:
                found += a.links.get(b.id, []) + b.links.get(a.id, [])
        return found

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
        for kv in self.kv_clients:
            await kv.aclose()
        for raw in self.raw_writers:
            await raw.aclose()
        for node in self.nodes.values():
            node.process.kill()
        for proxy in self.all_links:
            proxy.close()


async def converged(
    nodes: list[ClusterNode], timeout: float = 60.0, *, vectors: bool = True
) -> list[dict[str, Any]]:
    """Wait until every sync target of every node reports no lag, then until every node holds
    the same versioned state (keys, values, versions, tombstones, and with ``vectors`` the
    version vectors too); returns it (vectors left out unless compared)."""
    deadline = time.monotonic() + timeout
    problem = ""
    while True:
        statuses = await asyncio.gather(*(node.targets() for node in nodes))
        lagging = [
            f"{node.id}->{target}: {s['state']} lag {s['lag_events']} ({s['last_error']})"
            for node, targets in zip(nodes, statuses, strict=True)
            for target, s in targets.items()
            if s["lag_events"]
        ]
        if lagging:
            problem = "lagging: " + "; ".join(lagging)
        else:
            states = await asyncio.gather(*(node.snapshot() for node in nodes))
            if not vectors:
                for state in states:
                    for item in state:
                        del item["vector"]
            if all(state == states[0] for state in states[1:]):
                return states[0]
            problem = describe_difference(nodes, states)
        if time.monotonic() > deadline:
            raise AssertionError(f"the nodes did not converge in {timeout} s: {problem}")
        await asyncio.sleep(0.1)


def describe_difference(nodes: list[ClusterNode], states: list[list[dict[str, Any]]]) -> str:
    by_node = [{item["key"]: item for item in state} for state in states]
    keys = sorted(set().union(*by_node))
    lines = []
    for key in keys:
        seen = [state.get(key) for state in by_node]
        if any(item != seen[0] for item in seen[1:]):
            lines.append(
                f"{key}: "
                + ", ".join(
                    f"{node.id}={_short(item)}" for node, item in zip(nodes, seen, strict=True)
                )
            )
    return f"{len(lines)} keys differ, e.g. " + "; ".join(lines[:5])


def _short(item: dict[str, Any] | None) -> str:
    if item is None:
        return "missing"
    kind = "tombstone" if item["deleted"] else repr(item["value"])[:20]
    return f"{kind}@{item['version']}{item.get('vector', '')}"
