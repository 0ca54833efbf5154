"""A lean HTTP/1.1 writer for the multi-process tests: keep-alive connections on raw asyncio
streams. The scenarios write thousands of keys while the test process also runs every link's
proxy, and httpx costs several times the CPU per request; this leaves the cores to the nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import quote

import orjson

__all__ = ["RawWriter", "WriteFailed"]


class WriteFailed(Exception):
    """The node did not answer (down, cut off, reset): the write may or may not have
    committed."""


class RawWriter:
    """``put`` and ``delete`` over ``connections`` keep-alive connections to ``url``."""

    def __init__(self, url: str, connections: int = 8, timeout: float = 10.0) -> None:
        self.host_port = url.removeprefix("http://")
        self.timeout = timeout
        self._free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = (
            asyncio.Queue()
        )
        for _ in range(connections):
            self._free.put_nowait(None)  # opened on first use
        self._open: set[asyncio.StreamWriter] = set()

    async def put(self, key: str, value: bytes) -> str:
        """Write ``key``; the new version."""
        status, body = await self._request(b"PUT", f"/kv/{quote(key, safe='')}", value)
        if status != 200:
            raise WriteFailed(f"PUT {key}: HTTP {status} {body[:200]!r}")
        return str(orjson.loads(body)["version"])

    async def delete(self, key: str) -> str | None:
        """Delete ``key``; the tombstone's version, or None if there was no key."""
        ops = orjson.dumps({"ops": [{"op": "delete", "key": key}]})
        status, body = await self._request(b"POST", "/kv/_batch", ops, b"application/json")
        if status != 200:
            raise WriteFailed(f"delete {key}: HTTP {status} {body[:200]!r}")
        result = orjson.loads(body)["results"][0]
        return None if result["seq"] is None else str(result["version"])

    async def _request(
        self, method: bytes, path: str, body: bytes, content_type: bytes | None = None
    ) -> tuple[int, bytes]:
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n" % (
            method, path.encode(), self.host_port.encode(), len(body),
        )  # fmt: skip
        if content_type:
            head += b"Content-Type: " + content_type + b"\r\n"
        connection = await self._free.get()
        try:
            async with asyncio.timeout(self.timeout):
                if connection is None:
                    host, port = self.host_port.split(":")
                    connection = await asyncio.open_connection(host, int(port))
                    self._open.add(connection[1])
                reader, writer = connection
                writer.write(head + b"\r\n" + body)
                status, reply = await _response(reader)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            if connection is not None:
                self._close(connection[1])
            self._free.put_nowait(None)
            raise WriteFailed(f"{method.decode()} {path}: {type(exc).__name__}: {exc}") from None
        self._free.put_nowait(connection)
        return status, reply

    def _close(self, writer: asyncio.StreamWriter) -> None:
        self._open.discard(writer)
        with contextlib.suppress(Exception):
            writer.close()

    async def aclose(self) -> None:
        for writer in list(self._open):
            self._close(writer)

    async def __aenter__(self) -> RawWriter:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return int(head.split(b" ", 2)[1]), await reader.readexactly(length)
