"""A body over its limit is refused by its Content-Length before any of it is read, or as soon
as the part read passes the limit; a batch's limit is node.limits.max_batch_size (#6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from api import create_app
from api.server.kv_requests import BATCH_OP_FRAMING
from tests.api.conftest import make_settings

MiB = 1024 * 1024
CHUNK = 64 * 1024


def _scope(content_length: int | None) -> dict[str, Any]:
    headers = [(b"host", b"localhost"), (b"content-type", b"application/json")]
    if content_length is not None:
        headers.append((b"content-length", b"%d" % content_length))
    return {"type": "http", "method": "POST", "path": "/kv/_batch", "headers": headers,
            "query_string": b""}  # fmt: skip


async def _post(tmp_path: Path, content_length: int | None) -> tuple[int, dict[str, Any], int]:
    """Post an endless body to /kv/_batch: the status, the error and the bytes it read."""
    settings = make_settings(tmp_path, node={"limits": {"max_batch_size": "1MiB",
                                                        "max_batch_ops": 100}})  # fmt: skip
    app = create_app(settings)
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += CHUNK
        return {"type": "http.request", "body": b" " * CHUNK, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async with app.node:
        await app(_scope(content_length), receive, send)
    return sent[0]["status"], orjson.loads(sent[1]["body"]), read


async def test_a_batch_over_the_limit_is_refused_by_its_length(tmp_path: Path) -> None:
    status, error, read = await _post(tmp_path, int(1.5 * MiB))
    assert (status, read) == (413, 0)
    assert "node.limits.max_batch_size" in error["message"]
    assert error["limit"] == MiB + 100 * BATCH_OP_FRAMING


@pytest.mark.parametrize("declared", [None, 100])  # chunked, or a length that lies
async def test_a_batch_stops_being_read_past_the_limit(
    tmp_path: Path, declared: int | None
) -> None:
    status, _, read = await _post(tmp_path, declared)
    assert status == 413
    assert read <= MiB + 100 * BATCH_OP_FRAMING + CHUNK
