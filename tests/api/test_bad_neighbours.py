"""One bad client must not hurt the others: malformed writes are refused before they join a
commit group, so the ordinary writes grouped with them all succeed."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.api.conftest import LiveServer


async def test_bad_writers_cause_no_collateral_errors(live_server: LiveServer) -> None:
    statuses: Counter[tuple[str, int]] = Counter()

    async def good(kv: httpx.AsyncClient, writer: int) -> None:
        for i in range(20):
            response = await kv.put(f"/kv/good/{writer}/{i}", content=b"v")
            statuses["good", response.status_code] += 1

    async def bad(kv: httpx.AsyncClient, writer: int) -> None:
        for i in range(20):
            if i % 2:
                headers = {"content-type": "text/" + "x" * 300}  # over 255 bytes
                response = await kv.put(f"/kv/bad/{writer}/{i}", content=b"v", headers=headers)
            else:
                ops = [{"op": "put", "key": f"bad/{writer}/{i}", "value": "v", "content_type": 7}]
                response = await kv.post("/kv/_batch", json={"ops": ops})
            statuses["bad", response.status_code] += 1

    limits = httpx.Limits(max_connections=40)
    async with httpx.AsyncClient(base_url=live_server.url, limits=limits, timeout=30) as kv:
        await asyncio.gather(*(good(kv, w) for w in range(24)), *(bad(kv, w) for w in range(6)))
    assert statuses == {("good", 200): 24 * 20, ("bad", 400): 6 * 20}
    assert live_server.app.node.store.stats().writer.failed_commits == 0
