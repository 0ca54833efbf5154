"""``/streams``: create, read, update (live), delete and inspect named change streams.

Names starting with ``_`` belong to the system (the event bus, replication) and can be read
here but not changed. Streams the configuration file declares are listed with their
``owner`` and changed in the file; one it no longer declares is ``orphaned`` (it delivers
nothing and keeps its checkpoints) until DELETE removes it (``changestream/declare.py``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from changestream import StreamConfig

from ..auth import Role
from ..dependencies import JsonBody, node_of, require
from ..errors import BadRequest

__all__ = ["router"]

router = APIRouter(prefix="/streams", tags=["streams"])


def _config_from(body: Any, name: str | None = None) -> StreamConfig:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with the stream's settings")
    if name is not None:
        if body.get("name", name) != name:
            raise BadRequest(f"the body names stream {body['name']!r} but the path names {name!r}")
        body = {**body, "name": name}
    config = StreamConfig.from_dict(body)
    if config.name.startswith("_"):
        raise BadRequest(
            f"stream {config.name!r}: names starting with '_' are reserved for the system"
        )
    return config


@router.get("", dependencies=[require(Role.READ)])
async def list_streams(request: Request) -> dict[str, Any]:
    return {"streams": [stream.stats() for stream in node_of(request).streams.list()]}


@router.post("", status_code=201, dependencies=[require(Role.ADMIN)])
async def create_stream(request: Request, body: JsonBody) -> dict[str, Any]:
    stream = await node_of(request).streams.create(_config_from(body))
    return stream.config.to_dict()


@router.get("/{name}", dependencies=[require(Role.READ)])
async def get_stream(request: Request, name: str) -> dict[str, Any]:
    stream = node_of(request).streams.get(name)
    return {
        **stream.config.to_dict(),
        **stream.ownership.to_dict(),
        "consumers": sorted(stream.consumers),
    }


@router.put(
    "/{name}", dependencies=[require(Role.ADMIN)], responses={201: {"description": "created"}}
)
async def put_stream(
    request: Request, response: Response, name: str, body: JsonBody
) -> dict[str, Any]:
    """Create the stream, or reconfigure it live (consumers continue without losing events)."""
    streams = node_of(request).streams
    config = _config_from(body, name)
    existed = name in {stream.name for stream in streams.list()}
    stream = await streams.upsert(config)
    response.status_code = 200 if existed else 201
    return stream.config.to_dict()


@router.delete("/{name}", dependencies=[require(Role.ADMIN)])
async def delete_stream(request: Request, name: str) -> dict[str, Any]:
    if name.startswith("_"):
        raise BadRequest(f"stream {name!r} belongs to the system and cannot be deleted")
    await node_of(request).streams.remove(name)
    return {"name": name, "deleted": True}


@router.get("/{name}/stats", dependencies=[require(Role.READ)])
async def stream_stats(request: Request, name: str) -> dict[str, Any]:
    return node_of(request).streams.stats(name)
