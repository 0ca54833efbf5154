"""A bounded schemathesis run against the node's own OpenAPI document, on a real server (the
fast /kv protocol included): no generated request may get a 5xx, and every answer must be one
the document describes (its status, content type and body schema). The WebSocket paths are
described in the document but are not plain HTTP, so they are left out.

``KVDB_FUZZ_EXAMPLES`` sets the examples per operation (default 25, a minute or two).
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

schemathesis = pytest.importorskip("schemathesis", reason="pip install -e '.[test]'")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import LiveServer, make_settings  # noqa: E402

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("KVDB_FUZZ_EXAMPLES", "25"))
CALLS: Counter[str] = Counter()  # requests made, per operation
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]  # fmt: skip


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("fuzz")
    settings_ = make_settings(data, server={"subscriptions": {"stall_timeout": "2s"}})
    with LiveServer(settings_) as server:
        server.app.node.store.put_sync("seed", b"v")  # a feed's first page is never empty
        yield server


@schemathesis.serializer("application/msgpack")
def _to_msgpack(context: Any, value: Any) -> bytes:  # the replication endpoints' bodies
    return (
        bytes(value) if isinstance(value, bytes | bytearray) else msgpack.packb(value, default=str)
    )


@pytest.fixture(scope="module")
def api_schema(node: LiveServer) -> Any:
    document = copy.deepcopy(node.app.api.openapi())
    document["paths"] = {p: v for p, v in document["paths"].items() if not p.startswith("/ws/")}
    return schemathesis.openapi.from_dict(document)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_5xx_and_every_answer_is_documented(case: Any, node: LiveServer) -> None:
    feed = (case.query or {}).get("feed") if case.path == "/changes" else None
    if feed == "sse":  # a feed never ends by itself: take its first event
        case.query = {"feed": "sse", "since": "0", "limit": 1}
    elif feed == "longpoll":
        case.query["timeout_ms"] = 0
    case.call_and_validate(base_url=node.url, checks=CHECKS, timeout=10)
    CALLS[case.operation.label] += 1


def test_the_document_describes_websockets_sse_and_long_polls(node: LiveServer) -> None:
    paths = node.app.api.openapi()["paths"]
    assert "/ws/changes" in paths and "/ws/pipelines/{name}" in paths
    changes = paths["/changes"]["get"]
    assert "text/event-stream" in changes["responses"]["200"]["content"]
    assert "longpoll" in str(changes["parameters"])


def test_the_run_reached_every_operation() -> None:
    """Runs after the generated tests: each HTTP operation was called (the count is printed
    with -s)."""
    print(f"\nschemathesis: {sum(CALLS.values())} requests over {len(CALLS)} operations")
    assert len(CALLS) >= 45 and min(CALLS.values()) >= 1
