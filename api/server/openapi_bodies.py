"""Typed request bodies in the OpenAPI document for the routes that parse their bodies by hand
(to report errors the kvdb way): their schemas come from the same pydantic models that
validate them, so ``/docs`` shows what to send."""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..settings.bus import HandlerSettings, RouteSettings
from ..settings.streams import StreamSettings
from ..settings.sync import SyncSettings
from .routers.bus import RedriveBody, ReplayBody

__all__ = ["add_request_bodies"]


class SqlBody(BaseModel):
    """A SQL script as JSON; the same script may be sent as text instead."""

    model_config = ConfigDict(extra="forbid")
    sql: str = Field(description="One or more statements separated by ';'")


class BatchPut(BaseModel):
    op: Literal["put"]
    key: str
    value: str = Field(description="UTF-8 text in JSON; raw bytes in msgpack")
    content_type: str | None = None
    if_version: str | None = Field(None, description="only if the current version is this")
    if_absent: bool = Field(False, description="only if the key does not exist")


class BatchDelete(BaseModel):
    op: Literal["delete"]
    key: str
    if_version: str | None = Field(None, description="only if the current version is this")


class BatchBody(BaseModel):
    """Operations applied atomically: all commit in one transaction, or none does."""

    ops: list[Annotated[BatchPut | BatchDelete, Field(discriminator="op")]]


_NAMED = "the name may be left out: the path names it"
_BODIES: dict[tuple[str, str], tuple[type[BaseModel], str | None]] = {
    ("/streams", "post"): (StreamSettings, None),
    ("/streams/{name}", "put"): (StreamSettings, _NAMED),
    ("/bus/handlers", "post"): (HandlerSettings, None),
    ("/bus/handlers/{name}", "put"): (HandlerSettings, _NAMED),
    ("/bus/routes", "post"): (RouteSettings, None),
    ("/bus/routes/{name}", "put"): (RouteSettings, _NAMED),
    ("/bus/dead-letters/redrive", "post"): (RedriveBody, None),
    ("/bus/replay", "post"): (ReplayBody, None),
    ("/sql", "post"): (SqlBody, None),
    ("/sync/processors", "post"): (SyncSettings, None),
    ("/kv/_batch", "post"): (BatchBody, None),
}

_SQL_TEXT = {
    "schema": {"type": "string", "example": "SHOW PIPELINES;"},
}


def add_request_bodies(schema: dict[str, Any]) -> None:
    """Give each hand-parsed route its body's schema, and register the models."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for (path, method), (model, note) in _BODIES.items():
        operation = schema.get("paths", {}).get(path, {}).get(method)
        if operation is None:
            continue
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in model_schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        if note is not None:
            model_schema = copy.deepcopy(model_schema)
            model_schema["required"] = [f for f in model_schema.get("required", []) if f != "name"]
            model_schema["description"] = f"{model_schema.get('description', '')} ({note})".strip()
            name = f"{model.__name__}Named"
        else:
            name = model.__name__
        components[name] = model_schema
        ref = {"$ref": f"#/components/schemas/{name}"}
        existing = operation.get("requestBody", {}).get("content", {})
        content: dict[str, Any] = {"application/json": {}, **copy.deepcopy(existing)}
        for media in content.values():
            media["schema"] = ref
        if path == "/sql":
            content["text/plain"] = _SQL_TEXT
        operation["requestBody"] = {
            "required": path != "/bus/dead-letters/redrive",
            "content": content,
        }
