"""Python client for a kvdb node, over HTTP (httpx), in a sync and an async form.

    with Client("http://127.0.0.1:8080") as kv:
        kv.put("greeting", "hello")
        item = kv.get("greeting")          # Item, or None if the key does not exist

    async with AsyncClient() as kv:
        await kv.put("greeting", b"hello")

Errors derive from ``ClientError`` and carry the server's ``status``, ``code`` and ``message``.
A missing key is not an error: ``get`` and ``delete`` return None.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Self
from urllib.parse import quote

import httpx
import msgpack

from kvdb.ops import Delete, Put
from kvdb.versions import Version

from .admin import AdminCalls, AsyncAdminCalls
from .errors import ConnectionFailed, raise_for_error
from .transfer import BackupResult, Progress, run_backup, run_dump, run_load
from .watch import AsyncWatch, Watch

__all__ = [
    "AsyncClient",
    "BackupResult",
    "BatchResult",
    "Client",
    "DeleteResult",
    "Item",
    "ScanPage",
    "WriteResult",
]

DEFAULT_URL = "http://127.0.0.1:8080"


# -- results --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    key: str
    value: bytes
    version: Version
    content_type: str | None = None
    origin: str | None = None

    @property
    def text(self) -> str:
        return self.value.decode()


@dataclass(frozen=True, slots=True)
class WriteResult:
    key: str
    seq: int
    version: Version


@dataclass(frozen=True, slots=True)
class DeleteResult:
    key: str
    seq: int


@dataclass(frozen=True, slots=True)
class ScanPage:
    items: tuple[Item, ...]
    next: str | None


@dataclass(frozen=True, slots=True)
class BatchResult:
    txn: int | None
    last_seq: int | None
    results: tuple[WriteResult | None, ...]


# -- requests and responses, shared by both clients ----------------------------------------------


def _key_path(key: str) -> str:
    return "/kv/" + quote(key, safe="/")


def _put_request(
    key: str,
    value: bytes | str,
    content_type: str | None,
    if_version: Version | None,
    if_absent: bool,
) -> dict[str, Any]:
    headers = {}
    if content_type:
        headers["content-type"] = content_type
    if if_version is not None:
        headers["if-match"] = f'"{if_version}"'
    if if_absent:
        headers["if-none-match"] = "*"
    body = value.encode() if isinstance(value, str) else bytes(value)
    return {"method": "PUT", "url": _key_path(key), "content": body, "headers": headers}


def _write_result(response: httpx.Response) -> WriteResult:
    raise_for_error(response)
    doc = response.json()
    return WriteResult(doc["key"], doc["seq"], Version.parse(doc["version"]))


def _item(key: str, response: httpx.Response) -> Item | None:
    if response.status_code == 404:
        return None
    raise_for_error(response)
    return Item(
        key,
        response.content,
        Version.parse(response.headers["etag"].strip('"')),
        response.headers.get("content-type"),
        response.headers.get("x-kvdb-origin"),
    )


def _delete_request(key: str, if_version: Version | None) -> dict[str, Any]:
    headers = {} if if_version is None else {"if-match": f'"{if_version}"'}
    return {"method": "DELETE", "url": _key_path(key), "headers": headers}


def _delete_result(response: httpx.Response) -> DeleteResult | None:
    if response.status_code == 404:
        return None
    raise_for_error(response)
    doc = response.json()
    return DeleteResult(doc["key"], doc["seq"])


def _scan_request(
    prefix: str | None, start: str | None, end: str | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    params = {"prefix": prefix, "start": start, "end": end, "limit": limit, "cursor": cursor}
    return {
        "method": "GET",
        "url": "/kv",
        "params": {k: v for k, v in params.items() if v is not None},
    }


def _scan_page(response: httpx.Response) -> ScanPage:
    raise_for_error(response)
    doc = response.json()
    items = []
    for item in doc["items"]:
        value = item["value"]
        raw = base64.b64decode(value) if item.get("encoding") == "base64" else value.encode()
        version = Version.parse(item["version"])
        items.append(Item(item["key"], raw, version, item.get("content_type")))
    return ScanPage(tuple(items), doc["next"])


def _batch_request(ops: Iterable[Put | Delete]) -> dict[str, Any]:
    encoded = []
    for op in ops:
        doc: dict[str, Any] = {"key": op.key}
        if isinstance(op, Put):
            doc.update(op="put", value=op.value)
            if op.content_type:
                doc["content_type"] = op.content_type
            if op.if_absent:
                doc["if_absent"] = True
        else:
            doc["op"] = "delete"
        if op.if_version is not None:
            doc["if_version"] = str(op.if_version)
        encoded.append(doc)
    body = msgpack.packb({"ops": encoded}, use_bin_type=True)
    headers = {"content-type": "application/msgpack"}
    return {"method": "POST", "url": "/kv/_batch", "content": body, "headers": headers}


def _batch_result(response: httpx.Response) -> BatchResult:
    raise_for_error(response)
    doc = response.json()
    results = tuple(
        None if r["seq"] is None else WriteResult(r["key"], r["seq"], Version.parse(r["version"]))
        for r in doc["results"]
    )
    return BatchResult(doc["txn"], doc["last_seq"], results)


def _json(response: httpx.Response) -> dict[str, Any]:
    raise_for_error(response)
    doc: dict[str, Any] = response.json()
    return doc


def _client_options(url: str, token: str | None, timeout: float) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return {"base_url": url.rstrip("/"), "headers": headers, "timeout": timeout}


def _connection_failed(url: str, exc: httpx.TransportError) -> ConnectionFailed:
    return ConnectionFailed(0, "connection_failed", f"cannot reach kvdb at {url}: {exc}")


# -- the clients ----------------------------------------------------------------------------------


class Client(AdminCalls):
    """Blocking client. ``transport`` lets tests or embedders pass an httpx transport.
    Besides keys it covers the whole API (streams, bus, pipelines, SQL, sync: see
    ``api.client.admin``), backups and dumps."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.token = token
        self._http = httpx.Client(transport=transport, **_client_options(url, token, timeout))

    def _send(self, request: dict[str, Any]) -> httpx.Response:
        try:
            return self._http.request(**request)
        except httpx.TransportError as exc:
            raise _connection_failed(self.url, exc) from exc

    def put(
        self,
        key: str,
        value: bytes | str,
        *,
        content_type: str | None = None,
        if_version: Version | None = None,
        if_absent: bool = False,
    ) -> WriteResult:
        return _write_result(
            self._send(_put_request(key, value, content_type, if_version, if_absent))
        )

    def get(self, key: str) -> Item | None:
        return _item(key, self._send({"method": "GET", "url": _key_path(key)}))

    def delete(self, key: str, *, if_version: Version | None = None) -> DeleteResult | None:
        return _delete_result(self._send(_delete_request(key, if_version)))

    def scan(
        self,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> ScanPage:
        return _scan_page(self._send(_scan_request(prefix, start, end, limit, cursor)))

    def scan_all(
        self,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        page_size: int = 1000,
    ) -> Iterator[Item]:
        """Every item in the range, fetching pages as needed."""
        cursor = None
        while True:
            page = self.scan(prefix=prefix, start=start, end=end, limit=page_size, cursor=cursor)
            yield from page.items
            if page.next is None:
                return
            cursor = page.next

    def batch(self, ops: Iterable[Put | Delete]) -> BatchResult:
        return _batch_result(self._send(_batch_request(ops)))

    def watch(
        self,
        *,
        patterns: Iterable[str] = (),
        types: Iterable[str] = (),
        since: int | str | None = "now",
        stream: str | None = None,
        consumer: str | None = None,
        **reconnect: Any,
    ) -> Watch:
        """Iterate over change events (blocking), reconnecting by itself: see ``api.client.watch``.
        ``since``: a seq (events after it), ``"now"`` (default) or None with ``stream``.
        ``reconnect``: ``retries``, ``on_retry``, ``max_message_size`` (see ``AsyncWatch``)."""
        return Watch(
            self.url, token=self.token, patterns=patterns, types=types,
            since=None if stream else since, stream=stream, consumer=consumer, **reconnect,
        )  # fmt: skip

    def health(self) -> dict[str, Any]:
        return _json(self._send({"method": "GET", "url": "/health"}))

    @contextlib.contextmanager
    def _stream(self, request: dict[str, Any], **options: Any) -> Iterator[httpx.Response]:
        try:
            with self._http.stream(**request, **options) as response:
                yield response
        except httpx.TransportError as exc:
            raise _connection_failed(self.url, exc) from exc

    def backup(
        self, file: str | os.PathLike[str] | IO[bytes], *, progress: Progress | None = None
    ) -> BackupResult:
        """Save a consistent snapshot of the node (``GET /admin/backup``, admin role) to
        ``file``; ``kvdb restore`` makes a data directory of it. A path is written whole
        or not at all."""
        if not isinstance(file, str | os.PathLike):
            return run_backup(self, file, progress)
        partial = f"{os.fspath(file)}.partial"
        try:
            with open(partial, "wb") as out:
                result = run_backup(self, out, progress)
            os.replace(partial, file)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
        return result

    def dump(
        self, out: IO[str], *, prefix: str | None = None, progress: Progress | None = None
    ) -> int:
        """Write every key (under ``prefix``) to ``out`` as JSON lines; returns the count."""
        return run_dump(self, out, prefix=prefix, progress=progress)

    def load(
        self,
        lines: Iterable[str | bytes],
        *,
        batch_size: int = 500,
        progress: Progress | None = None,
    ) -> int:
        """Put the keys of a dump's lines, in atomic batches; returns how many."""
        return run_load(self, lines, batch_size=batch_size, progress=progress)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClient(AsyncAdminCalls):
    """The same operations for asyncio programs."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.token = token
        self._http = httpx.AsyncClient(transport=transport, **_client_options(url, token, timeout))

    async def _send(self, request: dict[str, Any]) -> httpx.Response:
        try:
            return await self._http.request(**request)
        except httpx.TransportError as exc:
            raise _connection_failed(self.url, exc) from exc

    async def put(
        self,
        key: str,
        value: bytes | str,
        *,
        content_type: str | None = None,
        if_version: Version | None = None,
        if_absent: bool = False,
    ) -> WriteResult:
        request = _put_request(key, value, content_type, if_version, if_absent)
        return _write_result(await self._send(request))

    async def get(self, key: str) -> Item | None:
        return _item(key, await self._send({"method": "GET", "url": _key_path(key)}))

    async def delete(self, key: str, *, if_version: Version | None = None) -> DeleteResult | None:
        return _delete_result(await self._send(_delete_request(key, if_version)))

    async def scan(
        self,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> ScanPage:
        return _scan_page(await self._send(_scan_request(prefix, start, end, limit, cursor)))

    async def scan_all(
        self,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        page_size: int = 1000,
    ) -> AsyncIterator[Item]:
        cursor = None
        while True:
            page = await self.scan(
                prefix=prefix, start=start, end=end, limit=page_size, cursor=cursor
            )
            for item in page.items:
                yield item
            if page.next is None:
                return
            cursor = page.next

    async def batch(self, ops: Iterable[Put | Delete]) -> BatchResult:
        return _batch_result(await self._send(_batch_request(ops)))

    def watch(
        self,
        *,
        patterns: Iterable[str] = (),
        types: Iterable[str] = (),
        since: int | str | None = "now",
        stream: str | None = None,
        consumer: str | None = None,
        **reconnect: Any,
    ) -> AsyncWatch:
        """Async iterator over change events, reconnecting by itself: see ``api.client.watch``."""
        return AsyncWatch(
            self.url, token=self.token, patterns=patterns, types=types,
            since=None if stream else since, stream=stream, consumer=consumer, **reconnect,
        )  # fmt: skip

    async def health(self) -> dict[str, Any]:
        return _json(await self._send({"method": "GET", "url": "/health"}))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
