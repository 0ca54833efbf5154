"""``/admin``: operations on the node as a whole. ``GET /admin/backup`` streams an online,
consistent snapshot of the store (LMDB's compacting copy inside one read transaction) while
writes continue; ``kvdb backup FILE`` saves it and ``kvdb restore`` turns it into a data
directory. Needs the admin role: a backup holds every key.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from kvdb.backup import Backup, open_backup

from ...node import Node
from ..auth import Role
from ..dependencies import node_of, require

__all__ = ["BACKUP_HEADERS", "node_summary", "router"]

router = APIRouter(prefix="/admin", tags=["operations"])

try:
    __version__ = version("kvdb")
except PackageNotFoundError:  # pragma: no cover - running from a tree that is not installed
    __version__ = "0+unknown"

# Response headers describing the snapshot (the body is the LMDB data file).
BACKUP_HEADERS = {
    "seq": "x-kvdb-backup-seq",
    "node_id": "x-kvdb-node-id",
    "epoch": "x-kvdb-epoch",
    "records": "x-kvdb-records",
    "log_events": "x-kvdb-log-events",
}


@router.get(
    "/backup",
    dependencies=[require(Role.ADMIN)],
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "the LMDB data file of a consistent snapshot; its last committed seq "
            "is in X-Kvdb-Backup-Seq",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "headers": {
                name: {"schema": {"type": "string"}, "description": f"the snapshot's {field}"}
                for field, name in BACKUP_HEADERS.items()
            },
        }
    },
)
async def backup(request: Request) -> StreamingResponse:
    """A consistent snapshot of the whole store (keys, versions, change log, checkpoints,
    streams, handlers, pipelines) taken at one commit, while writes go on. Restore it with
    ``kvdb restore FILE --data-dir DIR``."""
    store = node_of(request).store
    snapshot = await anyio.to_thread.run_sync(open_backup, store)
    info = snapshot.info
    headers = {name: str(getattr(info, field) or "") for field, name in BACKUP_HEADERS.items()}
    headers["content-disposition"] = f'attachment; filename="kvdb-{info.node_id}-{info.seq}.mdb"'
    return StreamingResponse(
        _stream(snapshot), media_type="application/octet-stream", headers=headers
    )


async def _stream(snapshot: Backup) -> AsyncIterator[bytes]:
    chunks = snapshot.chunks()
    try:
        while True:
            chunk = await anyio.to_thread.run_sync(next, chunks, None)
            if chunk is None:
                return
            yield chunk
    finally:
        await anyio.to_thread.run_sync(snapshot.close)


def node_summary(node: Node, started_at: float) -> dict[str, Any]:
    """What ``GET /stats`` says about the node itself (the console's overview shows it)."""
    settings = node.settings.node
    data_file = Path(settings.data_dir) / "data.mdb"
    try:
        disk_bytes: int | None = data_file.stat().st_size
    except OSError:
        disk_bytes = None
    return {
        "version": __version__,
        "epoch": getattr(node.store, "epoch", None),
        "durability": settings.durability.value,
        "started_at_ms": int(started_at * 1000),
        "uptime_s": round(time.time() - started_at, 3),
        "disk_bytes": disk_bytes,
    }
