"""``WebhookHandler``: POSTs batches of events as JSON with httpx.

Body: ``{"handler": <name>, "events": [<event JSON>, ...]}`` (events in their DESIGN 2 JSON
form), with an ``Idempotency-Key`` header of ``<handler>:<first seq>-<last seq>`` so the
receiver can drop the duplicates at-least-once delivery allows. Any 2xx answer is success.
408, 425, 429 and 5xx answers, timeouts and connection errors are retried with the handler's
backoff; other 4xx answers will not change on retry and are dead-lettered at once.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from kvdb import ChangeEvent

from .config import RetryPolicy
from .errors import DeliveryError, InvalidHandler, PermanentDeliveryError
from .handlers import BaseEventHandler

__all__ = ["DEFAULT_TIMEOUT_MS", "WebhookHandler", "check_webhook_url"]

_RETRYABLE_4XX = frozenset({408, 425, 429})


def check_webhook_url(url: object, handler: str | None = None) -> str:
    parsed = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        where = f"handler {handler!r}: " if handler else ""
        raise InvalidHandler(
            f"{where}webhook url {url!r} must be an absolute http:// or https:// URL with a "
            "host, such as https://hooks.example.com/kvdb"
        )
    return str(url)


DEFAULT_TIMEOUT_MS = 5000


class WebhookHandler(BaseEventHandler):
    kind = "webhook"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout_ms: float = DEFAULT_TIMEOUT_MS,
        headers: Mapping[str, str] | None = None,
        batch_size: int = 100,
        flush_interval_ms: float = 100,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            name, batch_size=batch_size, flush_interval_ms=flush_interval_ms, retry=retry
        )
        self.url = check_webhook_url(url, name)
        if isinstance(timeout_ms, bool) or not (
            isinstance(timeout_ms, int | float) and timeout_ms > 0
        ):
            raise InvalidHandler(f"handler {name!r}: timeout_ms must be > 0, got {timeout_ms!r}")
        self.timeout_ms = timeout_ms
        self.headers = dict(headers or {})
        for key, value in self.headers.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidHandler(f"handler {name!r}: header {key!r} must map to a string")
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout_ms / 1000,
                headers={"user-agent": "kvdb-eventbus", **self.headers},
                transport=self._transport,
            )

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        await super().close()

    async def handle(self, events: Sequence[ChangeEvent]) -> None:
        if self._client is None:
            await self.start()
        assert self._client is not None
        body = orjson.dumps({"handler": self.name, "events": [e.to_json() for e in events]})
        headers = {
            "content-type": "application/json",
            "idempotency-key": f"{self.name}:{events[0].seq}-{events[-1].seq}",
        }
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise DeliveryError(
                f"POST {self.url} timed out after {self.timeout_ms:.0f} ms: {exc!r}"
            ) from exc
        except httpx.TransportError as exc:
            raise DeliveryError(f"POST {self.url} failed: {exc!r}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = f"POST {self.url} answered {status}: {response.text[:200]!r}"
        if 400 <= status < 500 and status not in _RETRYABLE_4XX:
            raise PermanentDeliveryError(
                f"{detail}; the receiver rejected the request, so retrying cannot help: fix the "
                "receiver or the handler, then re-drive the dead letters"
            )
        raise DeliveryError(detail)

    def describe(self) -> dict[str, Any]:
        # Header values often hold credentials: show their names only.
        return {
            **super().describe(),
            "url": self.url,
            "timeout_ms": self.timeout_ms,
            "headers": sorted(self.headers),
        }
