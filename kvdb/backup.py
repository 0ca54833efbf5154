"""Online backups and restores of a node's LMDB environment.

A backup is LMDB's compacting copy (``mdb_env_copyfd2`` with ``MDB_CP_COMPACT``) made inside
one read transaction, so it is a consistent snapshot at one commit while writes go on: the
keys, versions, change log, checkpoints and system records as of ``BackupInfo.seq``. The
file is a plain LMDB data file (``data.mdb``); ``restore_backup`` turns it into a data
directory and gives it a new store epoch, so replication peers resync it rather than trust
it blindly.

    with open_backup(store) as backup:       # the snapshot is taken here
        print(backup.info.seq)
        for chunk in backup.chunks():         # the compacted copy, streamed
            out.write(chunk)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import lmdb

from .env import Environment, translate_error
from .errors import KvdbError
from .replication import META_EPOCH, new_epoch
from .txn import META_LAST_SEQ, META_NODE_ID, read_u64

if TYPE_CHECKING:
    from .store import Store

__all__ = [
    "META_EPOCH",
    "Backup",
    "BackupError",
    "BackupInfo",
    "new_epoch",
    "open_backup",
    "read_backup_info",
    "restore_backup",
]

CHUNK_BYTES = 256 * 1024
DATA_FILE = "data.mdb"


class BackupError(KvdbError):
    """A backup could not be taken, read or restored (the message says why and what to do)."""

    code = "backup_error"


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a snapshot holds: the last committed seq in it, the node that wrote it, that
    node's store epoch (None for stores made before epochs), and how many records."""

    seq: int
    node_id: str
    epoch: str | None
    records: int
    log_events: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _info(txn: lmdb.Transaction, dbs: dict[str, Any]) -> BackupInfo:
    meta = dbs["meta"]
    node_id = txn.get(META_NODE_ID, db=meta)
    epoch = txn.get(META_EPOCH, db=meta)
    return BackupInfo(
        seq=read_u64(txn, META_LAST_SEQ, meta) or 0,
        node_id=bytes(node_id).decode() if node_id is not None else "",
        epoch=bytes(epoch).decode() if epoch is not None else None,
        records=txn.stat(dbs["data"])["entries"],
        log_events=txn.stat(dbs["changelog"])["entries"],
    )


class Backup:
    """A running backup: ``info`` is known once it is open; ``chunks()`` yields the copy.

    Steps: (1) a thread opens a read transaction and reads the snapshot's meta; (2) it runs
    LMDB's compacting copy of that transaction into a pipe; (3) ``chunks()`` reads the pipe.
    Closing early (a client that went away) closes the pipe, which ends the copy with EPIPE.
    The read transaction holds the environment's resize gate, so a map resize waits for the
    backup to finish; the writer goes on otherwise.
    """

    def __init__(self, env: Environment) -> None:
        self._env = env
        self._read_fd, self._write_fd = os.pipe()
        self._opened = threading.Event()
        self._info: BackupInfo | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._copy, name="kvdb-backup", daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._info is None:
            self.close()
            raise self._failure("starting")

    @property
    def info(self) -> BackupInfo:
        assert self._info is not None
        return self._info

    def _copy(self) -> None:
        try:
            with self._env.read() as txn:
                self._info = _info(txn, self._env.dbs)
                self._opened.set()
                self._env.lmdb.copyfd(self._write_fd, compact=True, txn=txn)
        except BaseException as exc:  # reported by chunks(); a closed reader is not an error
            self._error = exc
        finally:
            self._opened.set()
            os.close(self._write_fd)

    def _failure(self, doing: str) -> KvdbError:
        exc = self._error
        if isinstance(exc, KvdbError):
            return exc
        if isinstance(exc, lmdb.Error):
            return translate_error(exc, self._env.path, f"{doing} a backup")
        return BackupError(f"backup failed while {doing}: {exc}")

    def chunks(self, size: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The compacted copy, in chunks; raises if the copy failed (the output is then
        incomplete and must be discarded)."""
        while chunk := os.read(self._read_fd, size):
            yield chunk
        self._thread.join()
        if self._error is not None and not self._closed:
            raise self._failure("copying")

    def close(self) -> None:
        """Stop reading; a copy still running ends (its writes fail) and its txn closes."""
        if self._closed:
            return
        self._closed = True
        os.close(self._read_fd)
        self._thread.join()

    def __enter__(self) -> Backup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_backup(store: Store) -> Backup:
    """Start an online backup of ``store``: a consistent snapshot at one commit."""
    return Backup(store._env)  # the environment stays inside the kvdb package


def _open_file(path: Path, *, readonly: bool) -> lmdb.Environment:
    try:
        return lmdb.open(
            str(path),
            subdir=False,
            readonly=readonly,
            lock=not readonly,
            max_dbs=len(Environment.DATABASES) + 2,
        )
    except lmdb.Error as exc:
        raise BackupError(f"{path} is not a kvdb backup (an LMDB data file): {exc}") from exc


def _open_dbs(env: lmdb.Environment, path: Path) -> dict[str, Any]:
    try:
        return {name: env.open_db(name.encode(), create=False) for name in Environment.DATABASES}
    except lmdb.Error as exc:
        raise BackupError(f"{path} is an LMDB file but not a kvdb backup: {exc}") from exc


def _copy(source: Path, target: Path, progress: Callable[[int], None] | None) -> None:
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(CHUNK_BYTES * 4):
            writer.write(chunk)
            if progress is not None:
                progress(len(chunk))
        writer.flush()
        os.fsync(writer.fileno())


def read_backup_info(path: str | os.PathLike[str]) -> BackupInfo:
    """What the backup file at ``path`` holds; raises ``BackupError`` if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path} is not a file")
    env = _open_file(path, readonly=True)
    try:
        dbs = _open_dbs(env, path)
        with env.begin() as txn:
            return _info(txn, dbs)
    finally:
        env.close()


def restore_backup(
    path: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *,
    epoch: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> BackupInfo:
    """Build the data directory ``data_dir`` from the backup file at ``path``, with a new
    store epoch (``epoch``, or a fresh one). ``data_dir`` must not exist or be empty.
    ``progress`` is called with the bytes copied, chunk by chunk."""
    source = Path(path)
    target = Path(data_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(
            f"{target} is not an empty directory: restore into a new one, so no existing "
            "store is overwritten"
        )
    read_backup_info(source)  # refuse anything that is not a backup before writing
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    data_file = target / DATA_FILE
    lock_file = target / f"{DATA_FILE}-lock"
    try:
        _copy(source, data_file, progress)
        env = _open_file(data_file, readonly=False)
        try:
            dbs = _open_dbs(env, data_file)
            with env.begin(write=True) as txn:
                txn.put(META_EPOCH, (epoch or new_epoch()).encode(), db=dbs["meta"])
                info = _info(txn, dbs)
            env.sync(True)
        finally:
            env.close()
    except BaseException:
        data_file.unlink(missing_ok=True)
        lock_file.unlink(missing_ok=True)
        if created:
            target.rmdir()
        raise
    # A data file opened with subdir=False leaves its lock file beside it; the store opens
    # the directory form, which makes its own.
    lock_file.unlink(missing_ok=True)
    return info
