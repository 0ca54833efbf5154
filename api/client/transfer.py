"""Moving data in and out of a node over HTTP: a backup (the store's consistent snapshot,
``GET /admin/backup``), and a dump / load of keys as JSON lines.

A dump line is ``{"key": ..., "value": ..., "content_type": ...}``; a value that is not UTF-8
is base64 with ``"encoding": "base64"`` (the form of ``GET /kv``). Loading writes the lines in
atomic batches; it is streaming on both sides, so files larger than memory are fine.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import IO, TYPE_CHECKING, Any

from kvdb.events import value_fields
from kvdb.ops import Put

from .errors import ClientError, InvalidRequest, raise_for_error

if TYPE_CHECKING:
    from .clients import Client, Item

__all__ = [
    "BackupResult",
    "Progress",
    "dump_line",
    "parse_dump_line",
    "run_backup",
    "run_dump",
    "run_load",
]

Progress = Callable[[int], None]
"""Called with how many more units (bytes, or keys) are done."""

SEQ_HEADER = "x-kvdb-backup-seq"


@dataclass(frozen=True, slots=True)
class BackupResult:
    """What ``Client.backup`` saved: the snapshot's last seq, its node and epoch, its size."""

    seq: int
    node_id: str
    epoch: str | None
    records: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_backup(client: Client, out: IO[bytes], progress: Progress | None = None) -> BackupResult:
    written = 0
    with client._stream({"method": "GET", "url": "/admin/backup"}, timeout=None) as response:
        if response.status_code >= 400:
            response.read()
            raise_for_error(response)
        headers = response.headers
        for chunk in response.iter_bytes(256 * 1024):
            out.write(chunk)
            written += len(chunk)
            if progress is not None:
                progress(len(chunk))
    return BackupResult(
        seq=int(headers[SEQ_HEADER]),
        node_id=headers.get("x-kvdb-node-id", ""),
        epoch=headers.get("x-kvdb-epoch") or None,
        records=int(headers.get("x-kvdb-records") or 0),
        bytes=written,
    )


def dump_line(item: Item) -> str:
    doc: dict[str, Any] = {"key": item.key, **value_fields(item.value)}
    if item.content_type:
        doc["content_type"] = item.content_type
    return json.dumps(doc, ensure_ascii=False)


def run_dump(
    client: Client, out: IO[str], *, prefix: str | None = None, progress: Progress | None = None
) -> int:
    count = 0
    for item in client.scan_all(prefix=prefix):
        out.write(dump_line(item) + "\n")
        count += 1
        if progress is not None:
            progress(1)
    return count


def parse_dump_line(line: str | bytes, number: int) -> Put:
    """One line of a dump as a put; ``number`` (1-based) names the line in errors."""
    try:
        doc = json.loads(line)
        key, value = doc["key"], doc["value"]
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("key and value must be strings")
        raw = base64.b64decode(value) if doc.get("encoding") == "base64" else value.encode()
        content_type = doc.get("content_type")
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(
            0, "bad_dump_line", f"line {number}: not a dump line ({exc}); expected "
            '{"key": "...", "value": "...", "content_type": "..."}',
        ) from None  # fmt: skip
    return Put(key, raw, content_type=content_type)


def _batches(lines: Iterable[str | bytes], size: int) -> Iterator[tuple[list[Put], int]]:
    batch: list[Put] = []
    consumed = 0
    for number, line in enumerate(lines, start=1):
        consumed += len(line)
        if not line.strip():
            continue
        batch.append(parse_dump_line(line, number))
        if len(batch) == size:
            yield batch, consumed
            batch, consumed = [], 0
    if batch or consumed:
        yield batch, consumed


def run_load(
    client: Client,
    lines: Iterable[str | bytes],
    *,
    batch_size: int = 500,
    progress: Progress | None = None,
) -> int:
    """Put every line's key; ``progress`` gets the bytes (characters) of lines consumed."""
    loaded = 0
    for batch, consumed in _batches(lines, batch_size):
        if batch:
            try:
                client.batch(batch)
            except ClientError as exc:
                raise type(exc)(
                    exc.status, exc.code, f"after {loaded} keys were loaded: {exc.message}",
                    exc.body,
                ) from exc  # fmt: skip
            loaded += len(batch)
        if progress is not None:
            progress(consumed)
    return loaded
