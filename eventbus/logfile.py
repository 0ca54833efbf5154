"""``LogFileHandler``: appends events to a file as JSON lines (an audit log).

One line per event, its DESIGN 2 JSON form. Writes happen in the handler's own thread, a
batch per write call; with ``fsync`` each batch is flushed to disk before it counts as
handled. After a crash the last batch may appear twice (at-least-once): readers can drop
lines whose ``seq`` they have seen.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from kvdb import ChangeEvent

from .config import RetryPolicy
from .errors import InvalidHandler
from .handlers import BaseEventHandler

__all__ = ["LogFileHandler"]


class LogFileHandler(BaseEventHandler):
    kind = "log"

    def __init__(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        fsync: bool = False,
        batch_size: int = 1000,
        flush_interval_ms: float = 0,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            name, batch_size=batch_size, flush_interval_ms=flush_interval_ms, retry=retry
        )
        if not str(path):
            raise InvalidHandler(f"handler {name!r}: give the path of the log file")
        self.path = Path(path)
        self.fsync = bool(fsync)
        self._file: IO[bytes] | None = None

    async def start(self) -> None:
        if self._file is None:
            self._file = await self.run_blocking(self._open)

    def _open(self) -> IO[bytes]:
        if not self.path.parent.is_dir():
            raise InvalidHandler(
                f"handler {self.name!r}: directory {str(self.path.parent)!r} of log file "
                f"{str(self.path)!r} does not exist; create it or choose another path"
            )
        try:
            return self.path.open("ab")
        except OSError as exc:
            raise InvalidHandler(
                f"handler {self.name!r}: cannot open log file {str(self.path)!r} for "
                f"appending: {exc.strerror}; check the path and its permissions"
            ) from exc

    async def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            await self.run_blocking(file.close)
        await super().close()

    async def handle(self, events: Sequence[ChangeEvent]) -> None:
        if self._file is None:
            await self.start()
        lines = b"".join(orjson.dumps(event.to_json()) + b"\n" for event in events)
        await self.run_blocking(self._write, lines)

    def _write(self, lines: bytes) -> None:
        file = self._file
        if file is None:
            raise OSError(f"log file {str(self.path)!r} is closed (the handler is stopping)")
        file.write(lines)
        file.flush()
        if self.fsync:
            os.fsync(file.fileno())

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "path": str(self.path), "fsync": self.fsync}
