"""The node's OpenAPI document, made to tell the truth.

FastAPI describes the routes it serves; this adds what it cannot know and corrects what it
gets wrong for kvdb: the ``/kv`` paths (served outside FastAPI, ``kv_openapi.py``), the request
bodies parsed by hand (``openapi_bodies.py``), the WebSocket paths, the SSE and long-poll forms
of ``GET /changes``, and the error answers: every error is the JSON ``Error`` document with
the status of ``errors.HTTP_STATUS`` (a request that does not validate is a 400, never the 422
FastAPI documents), and each operation lists the statuses it may answer.
``tests/ci/test_openapi_fuzz.py`` checks the document against the server with schemathesis.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from .kv_openapi import ERROR_SCHEMA, KV_PATHS
from .openapi_bodies import add_request_bodies

__all__ = ["install_openapi"]

_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_REASONS = {
    400: "bad input: a malformed query, header or body (the message says which and why)",
    401: "a token is needed (the node has tokens)",
    403: "the token lacks the role; a Host not allowed; a cross-site request",
    404: "no such object",
    409: "the name is taken, or the object is in use or owned elsewhere",
    410: "compacted: the log no longer holds the events asked for (oldest_seq)",
    412: "a condition (If-Match, If-None-Match, if_version) did not hold",
    413: "a body over its limit (the setting that raises it is named)",
    415: "a body of a type this operation does not take",
    422: "a replication batch from a clock too far ahead",
    502: "a target (webhook, replication peer) failed",
    503: "the node is starting or shutting down",
    507: "the store is out of space: only deletes are accepted",
}
_EVERYWHERE = (400, 401, 403, 404, 503)  # bad input, tokens, the guard, a name, shutdown


def _statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    statuses = set(_EVERYWHERE)
    if "{" in path or method != "get":
        statuses |= {404, 409}
    if "requestBody" in operation:
        statuses |= {413, 415}
    if method != "get":
        statuses.add(507)
    if path in ("/changes", "/bus/replay"):
        statuses.add(410)
    if path.startswith("/bus/") and method != "get":
        statuses.add(502)
    if path.startswith("/sync/"):
        statuses |= {409, 422, 502}
    return statuses


_WEBSOCKETS: dict[str, Any] = {
    "/ws/changes": {
        "get": {
            "tags": ["changes"],
            "summary": "WebSocket: live change events (an HTTP upgrade, not a plain GET)",
            "description": "Query: `pattern` and `type` (repeatable) with `since` (events with "
            "seq > since, or `now`), or `stream` (a named stream) with `consumer` (its "
            "checkpoint; needs the write role). The token, if any, as `Authorization: Bearer` "
            "or `access_token`. The server sends JSON text messages: "
            '`{"type": "events", "events": [...], "last_seq": N}` (at most '
            "`server.subscriptions.max_message_size` each), `caught_up` and `progress` "
            '(`{"type", "seq"}`: resume with since=seq), and `{"type": "error", "code", '
            '"message"}` before a close (`compacted`, `future_seq`, `shutting_down`, ...). '
            'The client may send `{"ack": seq}` (named streams) and `{"type": "ping"}`. A '
            "client that stops reading is closed after `stall_timeout` (code 4008).",
            "parameters": [
                {"name": name, "in": "query", "schema": {"type": "string"}}
                for name in ("pattern", "type", "since", "stream", "consumer", "access_token")
            ],
            "responses": {"101": {"description": "switching to the WebSocket protocol"}},
        }
    },
    "/ws/pipelines/{name}": {
        "get": {
            "tags": ["pipelines"],
            "summary": "WebSocket: a pipeline's results as they change (an HTTP upgrade)",
            "description": 'Sends `{"type": "snapshot", "columns", "rows"}`, then `{"type": '
            '"updates", "updates": [{"op": "upsert" | "delete" | "record", "row"}]}` per '
            'processed batch; `{"type": "error", ...}` before a close.',
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {"101": {"description": "switching to the WebSocket protocol"}},
        }
    },
}

_CHANGES_RESPONSE = {
    "description": "`feed=normal` (a page) and `feed=longpoll` (waits up to `timeout_ms` for "
    'a first matching event): `{"events": [...], "last_seq": N}`, resume with '
    "since=last_seq. `feed=sse`: a server-sent event stream, `event: change` per event "
    "(`id:` its seq), `caught_up` and `progress` bookmarks, and a final `error` (`compacted`, "
    "`shutting_down`); reconnect with `Last-Event-ID`.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["events", "last_seq"],
                "properties": {
                    "events": {"type": "array", "items": {"type": "object"}},
                    "last_seq": {"type": "integer"},
                },
            }
        },
        "text/event-stream": {
            "schema": {  # one event
                "type": "object",
                "properties": {
                    "event": {"enum": ["change", "caught_up", "progress", "error"]},
                    "id": {"type": "string"},
                    "data": {"type": "string", "description": "JSON"},
                },
            }
        },
    },
}


def _truthful(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    error = {"content": {"application/json": {"schema": _ERROR_REF}}}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            responses.pop("422", None)
            if path.startswith("/ws/"):
                continue
            for status in sorted(_statuses(path, method, operation)):
                responses.setdefault(str(status), {"description": _REASONS[status], **error})
    changes = schema["paths"].get("/changes", {}).get("get")
    if changes is not None:
        changes["responses"]["200"] = copy.deepcopy(_CHANGES_RESPONSE)


def install_openapi(api: FastAPI) -> None:
    """Make ``api.openapi()`` return the whole, truthful document (built once)."""
    generate: Callable[[], dict[str, Any]] = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = generate()
            schema["paths"] = {**KV_PATHS, **schema["paths"], **_WEBSOCKETS}
            add_request_bodies(schema)
            _truthful(schema)
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
