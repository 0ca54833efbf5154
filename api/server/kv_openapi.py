"""OpenAPI description of the ``/kv`` endpoints, which are served outside FastAPI's router."""

from __future__ import annotations

from typing import Any

__all__ = ["ERROR_SCHEMA", "KV_PATHS"]

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}

_ERROR = {
    "description": 'JSON error: {"error": "<code>", "message": "<what and how to fix>"}',
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_KEY = {
    "name": "key",
    "in": "path",
    "required": True,
    "description": "1..511 bytes of UTF-8; may contain '/'; must not start with '_'",
    "schema": {"type": "string"},
}
_WRITE_RESULT = {
    "type": "object",
    "properties": {
        "key": {"type": "string"},
        "seq": {"type": "integer"},
        "version": {"type": "string", "description": "HLC version (decimal string)"},
    },
}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): _ERROR for status in statuses}


KV_PATHS: dict[str, Any] = {
    "/kv/{key}": {
        "parameters": [_KEY],
        "put": {
            "tags": ["key-value"],
            "summary": "Set a key; the body is the value (any content type, stored)",
            "parameters": [
                {
                    "name": "If-Match",
                    "in": "header",
                    "schema": {"type": "string"},
                    "description": "write only if the current version is this one",
                },
                {
                    "name": "If-None-Match",
                    "in": "header",
                    "schema": {"enum": ["*"]},
                    "description": "write only if the key does not exist",
                },
            ],
            "requestBody": {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {
                "200": {
                    "description": "committed",
                    "content": {"application/json": {"schema": _WRITE_RESULT}},
                },
                **_errors(400, 401, 403, 412, 413, 507),
            },
        },
        "get": {
            "tags": ["key-value"],
            "summary": "The value, with its stored content type and ETag",
            "responses": {
                "200": {"description": "the value", "content": {"*/*": {}}},
                "304": {"description": "If-None-Match matched the current version"},
                **_errors(400, 401, 403, 404),
            },
        },
        "delete": {
            "tags": ["key-value"],
            "summary": "Delete a key (leaves a tombstone for replication)",
            "responses": {
                "200": {"description": "deleted"},
                **_errors(400, 401, 403, 404, 412, 507),
            },
        },
    },
    "/kv": {
        "get": {
            "tags": ["key-value"],
            "summary": "Scan keys in byte order: [start, end) within prefix, paged by cursor",
            "parameters": [
                {"name": name, "in": "query", "schema": {"type": "string"}}
                for name in ("prefix", "start", "end", "cursor")
            ]
            + [
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
                }
            ],
            "responses": {
                "200": {
                    "description": '{"items": [{"key", "value", "version"}], "next": cursor or '
                    'null}; binary values are base64 with "encoding": "base64"'
                },
                **_errors(400, 401, 403),
            },
        }
    },
    "/kv/_batch": {
        "post": {
            "tags": ["key-value"],
            "summary": "Apply puts and deletes atomically (JSON, or msgpack with raw byte values)",
            "requestBody": {
                "content": {
                    "application/json": {
                        "example": {
                            "ops": [
                                {"op": "put", "key": "a", "value": "1"},
                                {"op": "delete", "key": "b"},
                            ]
                        }
                    },
                    "application/msgpack": {},
                }
            },
            "responses": {
                "200": {"description": '{"txn", "last_seq", "results"}'},
                **_errors(400, 401, 403, 412, 413, 507),
            },
        }
    },
}
