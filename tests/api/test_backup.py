"""Online backup under concurrent writes, restore, and the dump / load round trip."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from api.client import Client, InvalidRequest
from kvdb import Store, StoreConfig
from kvdb.backup import BackupError, read_backup_info, restore_backup
from tests.api.conftest import LiveServer


def _state_at(store: Store, seq: int) -> dict[str, tuple[bytes, int]]:
    """The source's keys as of ``seq``, rebuilt from its change log."""
    state: dict[str, tuple[bytes, int]] = {}
    since = 0
    while since < seq:
        events = store.read_changes(since, limit=min(1000, seq - since))
        for event in events:
            if event.new_value is None:
                state.pop(event.key, None)
            else:
                state[event.key] = (event.new_value, event.version)
        since = events[-1].seq
    return state


def test_backup_under_writes_restores_the_snapshot(live_server: LiveServer, tmp_path: Path) -> None:
    source = live_server.app.node.store
    stop = threading.Event()
    written = []

    def write() -> None:
        with Client(live_server.url) as kv:
            n = 0
            while not stop.is_set():
                written.append(kv.put(f"k/{n % 300}", f"v{n}").seq)
                if n % 7 == 0:
                    kv.delete(f"k/{(n * 3) % 300}")
                n += 1

    with Client(live_server.url) as kv:
        kv.put_stream("orders", {"key_patterns": ["k/.*"], "enable_persistence": True})
        for n in range(200):
            kv.put(f"k/{n}", f"first{n}")
        writers = [threading.Thread(target=write) for _ in range(2)]
        for thread in writers:
            thread.start()
        try:
            while len(written) < 50:
                threading.Event().wait(0.01)
            result = kv.backup(tmp_path / "node.backup")
            after = len(written)
            while len(written) < after + 50:  # writes go on during and after the backup
                threading.Event().wait(0.01)
        finally:
            stop.set()
            for thread in writers:
                thread.join()

    assert 200 < result.seq < source.last_seq
    assert not (tmp_path / "node.backup.partial").exists()
    info = read_backup_info(tmp_path / "node.backup")
    assert info.seq == result.seq and info.node_id == "api-node"

    restored_info = restore_backup(tmp_path / "node.backup", tmp_path / "restored")
    assert restored_info.seq == result.seq
    assert restored_info.epoch and len(restored_info.epoch) == 32
    assert restored_info.epoch != info.epoch

    with Store(StoreConfig(data_dir=tmp_path / "restored")) as restored:
        assert restored.node_id == "api-node" and restored.last_seq == result.seq
        items = {}
        cursor = None
        while True:
            page = restored.scan(limit=1000, cursor=cursor)
            items.update({e.key: (e.value, e.version) for e in page.items})
            if page.next is None:
                break
            cursor = page.next
        assert items == _state_at(source, result.seq)
        assert restored.read_changes(0, limit=100_000) == source.read_changes(0, limit=result.seq)
        source_checkpoints = {c.name for c in source.list_checkpoints()}
        assert {c.name for c in restored.list_checkpoints()} == source_checkpoints
        assert restored.list_system_records("") == source.list_system_records("")


def test_restore_refuses_a_used_directory_and_a_non_backup(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"not lmdb" * 1000)
    with pytest.raises(BackupError, match="not a kvdb backup"):
        restore_backup(tmp_path / "junk", tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    with pytest.raises(BackupError, match="not an empty directory"):
        restore_backup(tmp_path / "junk", tmp_path / "used")


def test_dump_and_load_round_trip(live_server: LiveServer) -> None:
    with Client(live_server.url) as kv:
        kv.put("a/1", '{"n": 1}', content_type="application/json")
        kv.put("a/2", b"\xff\x00binary", content_type="application/octet-stream")
        kv.put("b/1", "text")
        out = io.StringIO()
        assert kv.dump(out, prefix="a/") == 2
        lines = out.getvalue().splitlines()
        assert '"encoding": "base64"' in lines[1]
        for key in ("a/1", "a/2"):
            kv.delete(key)
        assert kv.load(lines, batch_size=1) == 2
        item = kv.get("a/2")
        assert item is not None and item.value == b"\xff\x00binary"
        assert item.content_type == "application/octet-stream"
        with pytest.raises(InvalidRequest, match="line 2"):
            kv.load(['{"key": "x", "value": "1"}', "nonsense"])
