"""``/sync``: replication over HTTP (REPLICATION 2). Every endpoint here needs a token with
the ``replication`` role (or ``admin``); no other role opens them.

- ``POST /sync/handshake``: msgpack ``{source, source_epoch, target}``; who this node is, and
  how far it has applied the source's log.
- ``POST /sync/apply``: a msgpack batch; idempotent; 409 ``sequence_gap`` or
  ``epoch_mismatch``, 422 ``clock_skew``, 400 for a malformed batch; nothing applied then.
- ``GET /sync/status``: per processor and target: state, endpoint, checkpoint, lag, counters,
  last error.
- ``GET /sync/conflicts?since=&limit=``: conflict records after a seq, oldest first.
- ``GET /sync/snapshot?after=&limit=``: this node's versioned state in key order, tombstones
  included (read only): what a snapshot resync would send, for comparing nodes.
- ``GET/POST /sync/processors``, ``GET/DELETE /sync/processors/{name}``, and
  ``POST /sync/processors/{name}/pause`` / ``resume``.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError as PydanticValidationError

from kvdb import RemoteItem
from kvdb.replica import MAX_SNAPSHOT_PAGE
from sync import SyncConfig
from sync.protocol import (
    CONTENT_TYPE,
    decode_apply,
    decode_hello,
    encode_apply_result,
    encode_welcome,
)

from ...settings.problems import describe_validation_errors
from ...settings.sync import SyncSettings
from ..auth import Role
from ..dependencies import JsonBody, node_of, read_body, require
from ..errors import BadRequest

__all__ = ["router"]

router = APIRouter(prefix="/sync", tags=["replication"], dependencies=[require(Role.REPLICATION)])
MSGPACK_BODY = {
    "requestBody": {
        "required": True,
        "content": {CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    }
}
_MAX_ITEMS = 100_000
_MAX_CONFLICT_PAGE = 1000


async def _body(request: Request) -> bytes:
    limit = node_of(request).store.limits.max_batch_bytes + 1024 * 1024
    what = "a sync batch (node.limits.max_batch_size plus 1 MiB: send smaller batches)"
    return await read_body(request, limit, what)


@router.post("/handshake", openapi_extra=MSGPACK_BODY)
async def handshake(request: Request) -> Response:
    welcome = node_of(request).sync.receiver.welcome(decode_hello(await _body(request)))
    return Response(encode_welcome(welcome), media_type=CONTENT_TYPE)


@router.post("/apply", openapi_extra=MSGPACK_BODY)
async def apply(request: Request) -> Response:
    message = decode_apply(await _body(request), _MAX_ITEMS)
    result = await node_of(request).sync.receiver.apply(message)
    return Response(encode_apply_result(result), media_type=CONTENT_TYPE)


@router.get("/status")
async def status(request: Request) -> dict[str, Any]:
    return node_of(request).sync.status()


@router.get("/conflicts")
async def conflicts(
    request: Request,
    since: Annotated[int, Query(ge=0, le=2**63)] = 0,
    limit: Annotated[int, Query(ge=1, le=_MAX_CONFLICT_PAGE)] = 100,
) -> dict[str, Any]:
    """Conflict records whose seq (of their ``_sync/conflicts/<id>`` event on this node) is
    greater than ``since``: pass the last ``seq`` as ``since`` for the next page."""
    records = node_of(request).sync.conflicts(since, limit)
    items = [{**r.document, "seq": r.seq, "detected_ms": r.detected_ms} for r in records]
    return {"conflicts": items, "last_seq": records[-1].seq if records else since}


@router.get("/snapshot")
async def snapshot(
    request: Request,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SNAPSHOT_PAGE)] = 1000,
) -> dict[str, Any]:
    """Current versions of the keys after ``after``, in key order, tombstones included and
    reserved keys left out; pass ``next`` as ``after`` for the next page (null: the end).
    Versions and vector entries are strings (an hlc exceeds 2**53)."""
    items, following = node_of(request).store.replica.scan_versions(after, limit)
    return {"items": [_snapshot_item(item) for item in items], "next": following}


def _snapshot_item(item: RemoteItem) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "key": item.key,
        "deleted": item.deleted,
        "version": str(item.version),
        "vector": {origin: str(hlc) for origin, hlc in sorted(item.vector.items())},
        "value": None,
    }
    if item.value is not None:
        try:
            doc["value"] = item.value.decode()
        except UnicodeDecodeError:
            doc["value"] = base64.b64encode(item.value).decode()
            doc["encoding"] = "base64"
        doc["content_type"] = item.content_type
    return doc


@router.get("/processors")
async def list_processors(request: Request) -> dict[str, Any]:
    return {"processors": [p.status() for p in node_of(request).sync.list()]}


@router.post("/processors", status_code=201)
async def create_processor(request: Request, body: JsonBody) -> dict[str, Any]:
    """A sync processor made through the API (the YAML's ``sync:`` entry shape, durations in
    units, or a ``SyncConfig``'s fields in ms); it is stored and survives restarts."""
    processor = await node_of(request).sync.create(_config_of(body))
    return processor.status()


@router.get("/processors/{name}")
async def get_processor(request: Request, name: str) -> dict[str, Any]:
    return node_of(request).sync.get(name).status()


@router.delete("/processors/{name}")
async def delete_processor(request: Request, name: str) -> dict[str, Any]:
    await node_of(request).sync.remove(name)
    return {"deleted": name}


@router.post("/processors/{name}/pause")
async def pause(request: Request, name: str) -> dict[str, Any]:
    processor = node_of(request).sync.get(name)
    processor.pause()
    return processor.status()


@router.post("/processors/{name}/resume")
async def resume(request: Request, name: str) -> dict[str, Any]:
    processor = node_of(request).sync.get(name)
    processor.resume()
    return processor.status()


def _config_of(body: Any) -> SyncConfig:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with the sync processor's settings")
    if any(isinstance(key, str) and key.endswith("_ms") for key in body):
        return SyncConfig.from_dict(body)  # the fields of SyncConfig itself (times in ms)
    try:
        settings = SyncSettings.model_validate(body, context={"node_id": None})
    except PydanticValidationError as exc:
        problems = describe_validation_errors(exc.errors(), whole="(body)")
        raise BadRequest("; ".join(problems)) from None
    return settings.sync_config()
