"""The key-value endpoints (``/kv``, ``/kv/{key}``, ``/kv/_batch``), outside FastAPI.

They are the hot path, so they skip FastAPI's per-request validation and dependency injection
(DESIGN 10). ``KVEndpoints`` turns a request into a ``Reply`` (status, headers, body) without
doing any I/O of its own; two front ends carry it: the plain-ASGI ``__call__`` here (any ASGI
server, the test client) and, under uvicorn, ``fast_http.KvdbHttpProtocol``, which serves
single-key requests straight from the HTTP parser without an ASGI cycle. ``app.py`` documents
these paths in the same OpenAPI schema as the FastAPI routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, NamedTuple
from urllib.parse import parse_qs

import orjson

from kvdb.store import MAX_SCAN_LIMIT

from ..node import Node
from .auth import Role, TokenAuth
from .errors import BadRequest, MethodNotAllowed, NotFound, error_response_parts
from .guard import RequestGuard
from .kv_requests import (
    VALUE_HEADERS,
    batch_body_limit,
    batch_encoding,
    content_type_header,
    etag,
    etags,
    if_match,
    item_json,
    key_from_raw_path,
    parse_batch,
    served_content_type,
    too_large,
)
from .metrics import HttpMetrics

__all__ = ["KVEndpoints", "Reply", "operation"]

log = logging.getLogger("kvdb.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
_PARSE_INLINE = 256 * 1024
_ALLOWED = {"/kv": "GET", "/kv/": "GET", "/kv/_batch": "POST"}
_KEY_METHODS = "GET, HEAD, PUT, DELETE"


class Reply(NamedTuple):
    status: int
    body: bytes
    content_type: bytes | None
    headers: list[tuple[bytes, bytes]]


def operation(path: str, method: str) -> str:
    """The endpoint a request is for: put, get, delete, scan, batch, or "unsupported"."""
    if path in ("/kv", "/kv/"):
        return "scan" if method in ("GET", "HEAD") else "unsupported"
    if path == "/kv/_batch":
        return "batch" if method == "POST" else "unsupported"
    return {"PUT": "put", "GET": "get", "HEAD": "get", "DELETE": "delete"}.get(
        method, "unsupported"
    )


class KVEndpoints:
    def __init__(
        self, node: Node, auth: TokenAuth, metrics: HttpMetrics, guard: RequestGuard
    ) -> None:
        self.node = node
        self.auth = auth
        self.metrics = metrics
        self.guard = guard  # checked by the app, and by the fast protocol for its requests

    # -- single keys: shared by both front ends -----------------------------------------------

    async def key_request(
        self, op: str, raw_path: bytes, headers: dict[bytes, bytes], body: bytes
    ) -> Reply:
        """Answer a put, get or delete of the key in ``raw_path``; errors become replies."""
        try:
            key = key_from_raw_path(raw_path)
            if op == "get":
                self.auth.check(headers.get(b"authorization"), Role.READ)
                reply = self._get(key, headers)
            else:
                self.auth.check(headers.get(b"authorization"), Role.WRITE)
                if op == "put":
                    reply = await self._put(key, headers, body)
                else:
                    reply = await self._delete(key, headers)
        except Exception as exc:
            reply = self.error_reply(exc, op)
        self.metrics.count(op, reply.status)
        return reply

    def error_reply(self, exc: Exception, op: str) -> Reply:
        status, body, extra = error_response_parts(exc)
        if status == 500:
            log.exception("%s on /kv failed", op)
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        return Reply(status, body, JSON, headers)

    def check_body_size(self, headers: dict[bytes, bytes]) -> None:
        """Refuse a value whose declared length is over the limit before reading it."""
        declared = headers.get(b"content-length")
        limit = self.node.store.limits.max_value_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large("value", int(declared), limit, "max_value_bytes")

    async def _put(self, key: str, headers: dict[bytes, bytes], body: bytes) -> Reply:
        if_version = if_match(headers.get(b"if-match"))
        if_absent = False
        if (none_match := headers.get(b"if-none-match")) is not None:
            if none_match.strip() != b"*":
                raise BadRequest("If-None-Match on PUT supports only '*' (create if absent)")
            if_absent = True
        result = await self.node.store.put(
            key,
            body,
            content_type=content_type_header(headers.get(b"content-type")),
            if_version=if_version,
            if_absent=if_absent,
        )
        payload = orjson.dumps({"key": key, "seq": result.seq, "version": str(result.version)})
        return Reply(200, payload, JSON, [(b"etag", etag(result.version))])

    def _get(self, key: str, headers: dict[bytes, bytes]) -> Reply:
        entry = self.node.store.get(key)
        if entry is None:
            raise NotFound(f"key {key!r} does not exist")
        tag = etag(entry.version)
        extra = [(b"etag", tag), (b"x-kvdb-origin", entry.origin.encode())]
        if (none_match := headers.get(b"if-none-match")) is not None and tag in etags(none_match):
            return Reply(304, b"", None, extra)
        extra += VALUE_HEADERS
        return Reply(200, entry.value, served_content_type(entry.content_type), extra)

    async def _delete(self, key: str, headers: dict[bytes, bytes]) -> Reply:
        if_version = if_match(headers.get(b"if-match"))
        result = await self.node.store.delete(key, if_version=if_version)
        if result.seq is None:
            raise NotFound(f"key {key!r} does not exist")
        return Reply(200, orjson.dumps({"key": key, "seq": result.seq}), JSON, [])

    # -- the ASGI front end -------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        op = operation(scope["path"], method)
        headers = dict(scope["headers"])
        if op in ("put", "get", "delete"):
            try:
                body = await self._read_value(op, headers, receive)
            except Exception as exc:
                reply = self.error_reply(exc, op)
                self.metrics.count(op, reply.status)
            else:
                raw_path = scope.get("raw_path") or scope["path"].encode()
                reply = await self.key_request(op, raw_path, headers, body)
        else:
            try:
                reply = await self._collection_request(op, scope, headers, receive)
            except Exception as exc:
                reply = self.error_reply(exc, op)
            self.metrics.count(op, reply.status)
        await _send_reply(send, reply, head=method == "HEAD")

    async def _read_value(self, op: str, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        if op != "put":
            return b""
        self.check_body_size(headers)
        return await _read_body(receive, self.node.store.limits.max_value_bytes, "max_value_bytes")

    async def _collection_request(
        self, op: str, scope: Scope, headers: dict[bytes, bytes], receive: Receive
    ) -> Reply:
        if op == "scan":
            self.auth.check(headers.get(b"authorization"), Role.READ)
            return self._scan(scope)
        if op == "batch":
            self.auth.check(headers.get(b"authorization"), Role.WRITE)
            return await self._batch(headers, receive)
        path = scope["path"]
        allow = _ALLOWED.get(path, _KEY_METHODS)
        hint = " (a scan); to write a key use PUT /kv/{key}" if path in ("/kv", "/kv/") else ""
        raise MethodNotAllowed(f"{scope['method']} {path}: use {allow}{hint}", allow=allow)

    def _scan(self, scope: Scope) -> Reply:
        query = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        limit_text = one("limit") or "100"
        if not (limit_text.isascii() and limit_text.isdigit()) or not (
            1 <= int(limit_text) <= MAX_SCAN_LIMIT
        ):
            raise BadRequest(
                f"limit must be an integer within 1..{MAX_SCAN_LIMIT}, got {limit_text!r:.40}"
            )
        page = self.node.store.scan(
            prefix=one("prefix") or None,
            start=one("start") or None,
            end=one("end") or None,
            limit=int(limit_text),
            cursor=one("cursor") or None,
        )
        payload = orjson.dumps({"items": [item_json(e) for e in page.items], "next": page.next})
        return Reply(200, payload, JSON, [])

    async def _batch(self, headers: dict[bytes, bytes], receive: Receive) -> Reply:
        binary = batch_encoding(headers.get(b"content-type"))
        limit = batch_body_limit(self.node.store.limits)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large("batch", int(declared), limit, "max_batch_bytes")
        body = await _read_body(receive, limit, "max_batch_bytes")
        if len(body) > _PARSE_INLINE:  # a big batch parses off the event loop
            ops = await asyncio.to_thread(parse_batch, body, binary=binary)
        else:
            ops = parse_batch(body, binary=binary)
        result = await self.node.store.batch(ops)
        payload = orjson.dumps(
            {
                "txn": result.txn,
                "last_seq": result.last_seq,
                "results": [
                    {
                        "key": r.key,
                        "seq": r.seq,
                        "version": None if r.version is None else str(r.version),
                    }
                    for r in result.results
                ],
            }
        )
        return Reply(200, payload, JSON, [])


async def _read_body(receive: Receive, limit: int, setting: str) -> bytes:
    """The body, read as it arrives; refused as soon as it passes ``limit`` (the server then
    discards the rest as it arrives, keeping none of it)."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("the client disconnected before sending the whole body")
        body += message.get("body", b"")
        if len(body) > limit:
            raise too_large("body", None, limit, setting)
        if not message.get("more_body", False):
            return bytes(body)


async def _send_reply(send: Send, reply: Reply, *, head: bool) -> None:
    headers = [(b"content-length", b"%d" % len(reply.body))]
    if reply.content_type is not None:
        headers.append((b"content-type", reply.content_type))
    headers.extend(reply.headers)
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else reply.body})
