"""The map grows on demand; a full map or a full disk is a clear error and loses nothing."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvdb import Delete, Put, RetentionPolicy, StorageFull, Store, StoreConfig
from kvdb.config import KiB, MiB


def fill_until_full(store: Store, value_size: int) -> list[str]:
    """Write batches until the store reports full; return the acknowledged keys."""
    acknowledged: list[str] = []
    for batch in range(10_000):
        keys = [f"b{batch:05d}/{i}" for i in range(16)]
        try:
            store.batch_sync([Put(k, os.urandom(value_size)) for k in keys])
        except StorageFull:
            return acknowledged
        acknowledged.extend(keys)
    raise AssertionError("the store never filled up")


def test_map_grows_when_full(tmp_path: Path) -> None:
    config = StoreConfig(data_dir=tmp_path / "d", map_size=1 * MiB)
    with Store(config) as store:
        store.batch_sync([Put(f"k{i}", b"x" * 1000) for i in range(3000)])
        assert store.stats().map_size >= 4 * MiB
        assert store.get("k2999") is not None
    with Store(config) as reopened:  # a grown map is kept, never shrunk below the file
        assert reopened.stats().map_size >= 4 * MiB
        assert reopened.last_seq == 3000


def test_max_map_size_is_a_clear_error_and_loses_nothing(tmp_path: Path) -> None:
    config = StoreConfig(data_dir=tmp_path / "d", map_size=1 * MiB, max_map_size=2 * MiB)
    with Store(config) as store:
        acknowledged = fill_until_full(store, 2000)
        with pytest.raises(StorageFull, match="max_map_size"):
            store.put_sync("one-more", b"x" * 100_000)
        last_seq = store.last_seq
        assert store.get(acknowledged[-1]) is not None  # reads keep working
    bigger = StoreConfig(data_dir=tmp_path / "d", map_size=1 * MiB, max_map_size=8 * MiB)
    with Store(bigger) as store:
        assert store.last_seq == last_seq == len(acknowledged)
        assert all(store.get(k) is not None for k in acknowledged)
        assert [e.seq for e in store.read_changes(0, limit=10_000)] == list(range(1, last_seq + 1))
        store.put_sync("one-more", b"x" * 100_000)


@contextlib.contextmanager
def tiny_filesystem(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_disk_is_a_clear_error_and_loses_nothing(tmp_path: Path) -> None:
    with tiny_filesystem(tmp_path / "fs", "3m") as fs:
        config = StoreConfig(data_dir=fs / "d", map_size=64 * MiB, space_headroom=256 * KiB)
        with Store(config) as store:
            acknowledged = fill_until_full(store, 4000)
            assert acknowledged, "nothing fit on the disk at all"
            with pytest.raises(StorageFull, match=r"nearly out of space"):
                store.put_sync("more", b"x" * 200_000)
            last_seq = store.last_seq
        with Store(config) as store:
            assert store.last_seq == last_seq == len(acknowledged)
            assert all(store.get(k) is not None for k in acknowledged)
            events = store.read_changes(0, limit=100_000)
            assert [e.seq for e in events] == list(range(1, last_seq + 1))


# -- headroom for deletes (#14) -------------------------------------------------------------------


def _deletes_reclaim_space(store: Store, acknowledged: list[str]) -> None:
    """Once full, deletes still work (one by one and in batches), and once the change log no
    longer holds the deleted values (compaction), writes are accepted again."""
    for key in acknowledged[:8]:
        assert store.delete_sync(key).seq is not None
    for start in range(8, len(acknowledged), 16):
        store.batch_sync([Delete(key) for key in acknowledged[start : start + 16]])
        store.compact_sync()
    assert all(store.get(key) is None for key in acknowledged)
    for i in range(16):
        store.put_sync(f"room-again/{i}", b"x" * 4000)


def test_a_full_disk_still_takes_deletes(tmp_path: Path) -> None:
    with tiny_filesystem(tmp_path / "fs", "3m") as fs:
        config = StoreConfig(
            data_dir=fs / "d",
            map_size=64 * MiB,
            space_headroom=512 * KiB,
            retention=RetentionPolicy(max_events=0),
        )
        with Store(config) as store:
            _deletes_reclaim_space(store, fill_until_full(store, 4000))


def test_a_full_map_still_takes_deletes(tmp_path: Path) -> None:
    config = StoreConfig(
        data_dir=tmp_path / "d",
        map_size=1 * MiB,
        max_map_size=4 * MiB,
        space_headroom=512 * KiB,
        retention=RetentionPolicy(max_events=0),
    )
    with Store(config) as store:
        acknowledged = fill_until_full(store, 2000)
        with pytest.raises(StorageFull, match="max_map_size"):
            store.put_sync("one-more", b"x" * 100_000)
        _deletes_reclaim_space(store, acknowledged)
