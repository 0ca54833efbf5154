"""The LMDB environment of one node: sub-databases, map growth and the data-dir lock.

This is the only module that opens LMDB; ``lmdb.Error`` is translated into ``kvdb.errors``
here and in the writer, never further out.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lmdb

from .config import Durability, StoreConfig
from .errors import DataDirLocked, KvdbError, StorageError, StorageFull

__all__ = ["Environment"]

# Free bytes below which a failed commit is reported as a full disk rather than an I/O error.
_DISK_FULL_MARGIN = 4 * 1024 * 1024


class _ResizeGate:
    """Read transactions share the gate; a map resize holds it alone.

    LMDB requires that no transaction of this process is active while the map is resized
    (``mdb_env_set_mapsize``), because readers hold pointers into the old mapping. Read
    transactions are short and never span an ``await``, so a resize waits only briefly.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._resizing = False

    def __enter__(self) -> None:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._readers += 1

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._readers -= 1
            if self._resizing and not self._readers:
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._resizing = True
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()


class Environment:
    """Opens (or creates) the node's LMDB environment under ``config.data_dir``."""

    DATABASES = (
        "data",
        "changelog",
        "meta",
        "checkpoints",
        "tombstones",
        "system",
        "inbound",
        "conflicts",
    )

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.path = Path(config.data_dir)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock_data_dir(self.path)
        self.gate = _ResizeGate()
        try:
            self.lmdb = lmdb.open(
                str(self.path),
                map_size=config.map_size,
                max_dbs=len(self.DATABASES) + 2,
                max_readers=1024,
                sync=config.durability is not Durability.ASYNC,
                metasync=config.durability is Durability.FULL,
                readahead=True,
                lock=True,
            )
            # The map may have grown in an earlier run; never shrink it below the file.
            current = self.lmdb.info()["map_size"]
            if current > config.map_size:
                self.lmdb.set_mapsize(current)
            with self.lmdb.begin(write=True) as txn:
                self.dbs = {
                    name: self.lmdb.open_db(name.encode(), txn=txn) for name in self.DATABASES
                }
        except lmdb.Error as exc:
            os.close(self._lock_fd)
            raise translate_error(exc, self.path, "opening the store") from exc

    def read(self, **kwargs: Any) -> _ReadTxn:
        """A read-only transaction as a context manager: ``with env.read() as txn``."""
        return _ReadTxn(self, kwargs)

    @property
    def map_size(self) -> int:
        return int(self.lmdb.info()["map_size"])

    def grow_map(self, *, into_headroom: bool = False) -> int:
        """Double the map (up to ``max_map_size``, less the space headroom unless
        ``into_headroom``: see ``space.py``). Call with no write txn open."""
        current = self.map_size
        limit = self.config.max_map_size
        if limit is not None and not into_headroom:
            limit = max(self.config.map_size, limit - self.config.headroom)
        if limit is not None and current >= limit:
            raise StorageFull(
                f"the store reached node.max_map_size ({self.config.max_map_size} bytes, "
                f"{self.config.headroom} of them kept for deletes): raise node.max_map_size, "
                "lower the change-log retention, or delete data"
            )
        target = current * 2 if limit is None else min(current * 2, limit)
        with self.gate.exclusive():
            try:
                self.lmdb.set_mapsize(target)
            except lmdb.Error as exc:
                raise translate_error(exc, self.path, "growing the map") from exc
        return target

    def sync(self) -> None:
        try:
            self.lmdb.sync(True)
        except lmdb.Error as exc:
            raise translate_error(exc, self.path, "flushing to disk") from exc

    def close(self) -> None:
        with self.gate.exclusive():
            self.lmdb.close()
        os.close(self._lock_fd)


class _ReadTxn:
    __slots__ = ("_env", "_kwargs", "_txn")

    def __init__(self, env: Environment, kwargs: dict[str, Any]) -> None:
        self._env = env
        self._kwargs = kwargs

    def __enter__(self) -> lmdb.Transaction:
        self._env.gate.__enter__()
        try:
            self._txn = self._env.lmdb.begin(**self._kwargs)
        except lmdb.Error as exc:
            self._env.gate.__exit__()
            raise translate_error(exc, self._env.path, "reading") from exc
        return self._txn

    def __exit__(self, *exc: object) -> None:
        try:
            self._txn.abort()
        finally:
            self._env.gate.__exit__()


def translate_error(exc: lmdb.Error, path: Path, doing: str) -> KvdbError:
    """Map an LMDB failure to a kvdb error. A write that fails on a (nearly) full disk is a
    ``StorageFull``: LMDB reports a short write as EIO, so the free space decides."""
    if isinstance(exc, lmdb.MapFullError):
        return StorageFull(f"the LMDB map is full while {doing}: raise node.max_map_size")
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        free = None
    if free is not None and free < _DISK_FULL_MARGIN:
        return StorageFull(
            f"the disk holding {path} is full ({free} bytes free) while {doing}; nothing was "
            "written: free disk space, then retry"
        )
    return StorageError(f"storage failure while {doing} in {path}: {exc}")


def _lock_data_dir(path: Path) -> int:
    """Hold an exclusive lock on the data dir for the life of the process: two processes
    writing one environment would each number their own seq."""
    fd = os.open(path / "kvdb.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
            raise DataDirLocked(
                f"data dir {path} is in use by another kvdb process (pid {owner}); stop it or "
                "use another --data-dir"
            ) from exc
        raise StorageError(f"cannot lock data dir {path}: {exc}") from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
