"""``RemoteDBSyncTarget``: another kvdb node over HTTP (httpx, msgpack bodies).

Endpoints are addresses of the same node, in order of preference. After ``max_retry_count``
consecutive failed requests the target moves to the next endpoint (a failover); while it is
not on the first one, ``check_health`` probes the first and moves back after
``FAILBACK_AFTER`` good probes in a row, so a flapping link does not bounce traffic.
"""

from __future__ import annotations

from typing import Any

import httpx

from kvdb import ApplyResult, RemoteBatch

from .config import TargetConfig
from .errors import (
    ResyncNeeded,
    TargetMismatch,
    TargetRefused,
    TargetUnavailable,
)
from .protocol import (
    CONTENT_TYPE,
    Hello,
    Mode,
    Welcome,
    decode_apply_result,
    decode_welcome,
    encode_apply,
    encode_hello,
)

__all__ = ["FAILBACK_AFTER", "RemoteDBSyncTarget"]

FAILBACK_AFTER = 3
_RESYNC_CODES = {"sequence_gap", "epoch_mismatch"}


class RemoteDBSyncTarget:
    def __init__(
        self,
        config: TargetConfig,
        *,
        max_retry_count: int = 3,
        timeout_ms: int = 10_000,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.node_id = config.node_id
        self.endpoints = config.endpoints
        self.max_retry_count = max_retry_count
        self.failovers = 0
        self.failbacks = 0
        self._index = 0
        self._failures = 0  # consecutive failed attempts, on the current endpoint
        self._attempt = 0  # requests in flight together (snapshot pages) are one attempt
        self._good_probes = 0
        headers = {"content-type": CONTENT_TYPE, "accept": CONTENT_TYPE}
        if config.token:
            headers["authorization"] = f"Bearer {config.token}"
        self._http = httpx.AsyncClient(
            headers=headers, timeout=timeout_ms / 1000, transport=transport
        )

    @property
    def endpoint(self) -> str:
        return self.endpoints[self._index]

    async def handshake(self, hello: Hello) -> Welcome:
        welcome = decode_welcome(await self._post("/sync/handshake", encode_hello(hello)))
        if welcome.node_id != self.node_id:
            raise TargetMismatch(
                f"{self.endpoint} is node {welcome.node_id!r}, but this target is configured as "
                f"{self.node_id!r}: fix the endpoint or the target's node_id",
                endpoint=self.endpoint,
                node_id=welcome.node_id,
            )
        return welcome

    async def apply(self, batch: RemoteBatch, mode: Mode = "log") -> ApplyResult:
        return decode_apply_result(await self._post("/sync/apply", encode_apply(batch, mode)))

    async def check_health(self) -> bool:
        """Probe the preferred endpoint when failed over (failing back after enough good
        probes), else the current one."""
        probe = self.endpoints[0]
        try:
            response = await self._http.get(probe + "/health")
            healthy = response.status_code == 200
        except Exception:  # as in _post: httpcore can leak more than httpx.HTTPError
            healthy = False
        if self._index == 0:
            return healthy
        self._good_probes = self._good_probes + 1 if healthy else 0
        if self._good_probes >= FAILBACK_AFTER:
            self._index, self._failures, self._good_probes = 0, 0, 0
            self.failbacks += 1
        return healthy

    async def close(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: bytes) -> bytes:
        url, attempt = self.endpoint + path, self._attempt
        try:
            response = await self._http.post(url, content=body)
        except Exception as exc:
            # httpx.HTTPError, and what httpcore/anyio let through when a connection is reset
            # as it opens (AttributeError: 'NoneType' object has no attribute 'getpeername'):
            # either way the node did not answer.
            self._failed(attempt)
            reason = str(exc) or type(exc).__name__
            raise TargetUnavailable(
                f"{url}: {reason}", endpoint=self.endpoint, node_id=self.node_id
            ) from None
        if response.status_code == 200:
            self._failures = 0
            return response.content
        error, message, fields = _error_of(response)
        if response.status_code >= 500 or response.status_code in (408, 429):
            self._failed(attempt)
            raise TargetUnavailable(
                f"{url}: HTTP {response.status_code} {error}: {message}",
                endpoint=self.endpoint, status=response.status_code,
            )  # fmt: skip
        self._failures = 0  # the node answered: the link is fine
        if error in _RESYNC_CODES:
            raise ResyncNeeded(f"{self.node_id}: {message}", reason=error, **fields)
        if error == "invalid_sync_message" and "node_id" in fields:
            raise TargetMismatch(f"{url}: {message}", endpoint=self.endpoint, **fields)
        raise TargetRefused(
            f"{url}: HTTP {response.status_code} {error}: {message}",
            endpoint=self.endpoint, status=response.status_code, reason=error,
        )  # fmt: skip

    def _failed(self, attempt: int) -> None:
        if attempt != self._attempt:
            return  # a request sent with one that already failed: the same outage
        self._attempt += 1
        self._failures += 1
        if self._failures >= self.max_retry_count and len(self.endpoints) > 1:
            self._index = (self._index + 1) % len(self.endpoints)
            self._failures = 0
            self._good_probes = 0
            self.failovers += 1


def _error_of(response: httpx.Response) -> tuple[str, str, dict[str, Any]]:
    try:
        doc = response.json()
        fields = {k: v for k, v in doc.items() if k not in ("error", "message")}
        return str(doc["error"]), str(doc["message"]), fields
    except (ValueError, KeyError, TypeError, AttributeError):
        return "http_error", response.text[:200] or response.reason_phrase, {}
