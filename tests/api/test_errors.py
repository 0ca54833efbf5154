"""One error shape, one table: every package's errors become HTTP by their class hierarchy."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException

from api.errors import ApiError, ConfigError
from api.server.errors import HTTP_STATUS, MethodNotAllowed, Unauthorized, error_document
from changestream import ChangeStreamError, InvalidPattern, UnknownStream
from compute import SqlParseError, UnsupportedSql
from eventbus import BusNotStarted, EventBusError, HandlerInUse
from kvdb import Compacted, KvdbError, PreconditionFailed, StructuredError, ValueTooLarge
from sync import SyncError


@pytest.mark.parametrize("root", [KvdbError, ChangeStreamError, EventBusError, SyncError, ApiError])
def test_every_package_root_has_the_one_shape(root: type[StructuredError]) -> None:
    assert issubclass(root, StructuredError)
    error = root("what went wrong and how to fix it")
    assert (error.code, error.message, error.fields) == (
        root.code,
        "what went wrong and how to fix it",
        {},
    )


@pytest.mark.parametrize(
    ("error", "status", "document"),
    [
        (Compacted(3, 7), 410, {"error": "compacted", "oldest_seq": 7, "since": 3}),
        (
            PreconditionFailed("m", key="k", current_version=2**60),
            412,
            {"error": "precondition_failed", "key": "k", "current_version": str(2**60)},
        ),
        (
            PreconditionFailed("m", key="k", current_version=None),
            412,
            {"error": "precondition_failed", "key": "k", "current_version": None},
        ),
        (
            ValueTooLarge("m", size=9, limit=8, setting="node.limits.max_value_size"),
            413,
            {"size": 9, "limit": 8, "setting": "node.limits.max_value_size"},
        ),
        (UnknownStream("s"), 404, {"error": "unknown_stream", "name": "s"}),
        (InvalidPattern("(", "missing )"), 400, {"error": "invalid_pattern", "pattern": "("}),
        (HandlerInUse("h", ["r"]), 409, {"error": "handler_in_use", "routes": ["r"]}),
        (BusNotStarted(), 503, {"error": "not_started"}),
        (SqlParseError("expected ','", 1, 23), 400, {"line": 1, "column": 23}),
        (UnsupportedSql("X", "hint"), 400, {"error": "unsupported_sql", "construct": "X"}),
        (ConfigError("bad"), 500, {"error": "invalid_config", "message": "bad"}),
    ],
)
def test_documents_carry_code_message_and_fields(
    error: StructuredError, status: int, document: dict[str, Any]
) -> None:
    got_status, got, _ = error_document(error)
    assert got_status == status
    assert got.items() >= document.items(), got
    assert got["message"] == error.message
    assert "line" not in error_document(SqlParseError("no position"))[1]


def test_a_subclass_takes_its_nearest_listed_parent_status() -> None:
    class VeryUnknownStream(UnknownStream):
        code = "very_unknown_stream"

    assert VeryUnknownStream not in HTTP_STATUS
    status, document, _ = error_document(VeryUnknownStream("s"))
    assert status == 404 and document["error"] == "very_unknown_stream"
    assert error_document(SyncError("x"))[:2] == (500, {"error": "sync_error", "message": "x"})


def test_headers_and_foreign_errors() -> None:
    assert error_document(MethodNotAllowed("m", allow="GET"))[2] == {"allow": "GET"}
    assert "www-authenticate" in error_document(Unauthorized("m"))[2]
    assert error_document(HTTPException(418, "teapot"))[:2] == (
        418,
        {"error": "http_error", "message": "teapot"},
    )
    status, document, _ = error_document(ValueError("secret detail"))
    assert status == 500 and document["error"] == "internal_error"
    assert "secret" not in document["message"]


def test_the_client_errors_have_the_shape_too() -> None:
    import httpx

    from api.client import ClientError, Compacted, WatchError
    from api.client.errors import raise_for_error

    body = {"error": "compacted", "message": "m", "oldest_seq": 7, "since": 3}
    with pytest.raises(Compacted) as info:
        raise_for_error(httpx.Response(410, json=body))
    assert isinstance(info.value, StructuredError)
    assert (info.value.code, info.value.message) == ("compacted", "m")
    assert info.value.fields == {"oldest_seq": 7, "since": 3} and info.value.oldest_seq == 7
    assert str(info.value) == "compacted: m"
    assert issubclass(WatchError, ClientError)


def test_405_lists_every_method_of_the_path(client: TestClient) -> None:
    response = client.put("/streams", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert client.post("/bus/handlers/x", json={}).headers["allow"] == "DELETE, GET, HEAD, PUT"
