"""Sync processors follow the declaration rule of every subsystem: a dropped entry is orphaned
(stopped, kept with the checkpoints that pin the log for its targets, listed and warned about)
until deleted or pruned; a start without a file changes nothing; processors made through the
API are never the file's; and bad entries are refused before anything applies."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import create_app, load_settings
from api.errors import ConfigError

# Targets nobody listens on: the processors stay unhealthy, which is all these tests need.
ENTRY = """  - name: {name}
    targets: [{{node_id: {node}, endpoints: ["http://127.0.0.1:9"]}}]
    retry_delay: 50ms
    max_retry_delay: 100ms
"""


class Files:
    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "kvdb.yaml"
        self.data = tmp_path / "data"

    def write(self, *entries: tuple[str, str], prune: bool = False) -> None:
        body = "".join(ENTRY.format(name=name, node=node) for name, node in entries)
        self.path.write_text(
            f'node: {{id: a, data_dir: "{self.data}"}}\n'
            + ("prune: true\n" if prune else "")
            + ("sync:\n" + body if entries else "sync: []\n")
        )

    @contextmanager
    def serve(self, *, with_file: bool = True) -> Iterator[TestClient]:
        if with_file:
            settings = load_settings(self.path)
        else:
            settings = load_settings(overrides={"node": {"data_dir": str(self.data), "id": "a"}})
        with TestClient(create_app(settings), base_url="http://localhost") as client:
            yield client


def processors(client: TestClient) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in client.get("/sync/status").json()["processors"]}


def orphans(client: TestClient) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in client.get("/sync/status").json()["orphaned"]}


def test_a_dropped_processor_is_orphaned_kept_and_pruned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = Files(tmp_path)
    files.write(("to-b", "b"), ("to-c", "c"))
    with files.serve() as client:
        made = {"name": "adhoc", "targets": [{"node_id": "d", "endpoints": ["http://127.0.0.1:9"]}]}
        assert client.post("/sync/processors", json=made).status_code == 201
        client.put("/kv/k", content=b"v")
        running = processors(client)
        assert sorted(running) == ["adhoc", "to-b", "to-c"]
        assert (running["to-c"]["owner"], running["adhoc"]["owner"]) == ("config", None)

    files.write(("to-b", "b"))
    with caplog.at_level(logging.WARNING), files.serve() as client:
        assert sorted(processors(client)) == ["adhoc", "to-b"]  # to-c stopped...
        kept = orphans(client)["to-c"]  # ...and kept, with what it pins
        assert kept["pins"] == {"stream/_sync.to-c/c": 0}
        assert "sync processor 'to-c' is orphaned" in caplog.text
        stats = {(o["kind"], o["name"]) for o in client.get("/stats").json()["orphaned"]}
        assert ("sync processor", "to-c") in stats
        assert client.get("/streams/_sync.to-c").status_code == 200  # its stream stays

    with files.serve(with_file=False) as client:  # no --config: nothing changes
        assert sorted(processors(client)) == ["adhoc", "to-b"]
        assert "to-c" in orphans(client)

    files.write(("to-b", "b"), prune=True)
    with files.serve() as client:
        assert sorted(processors(client)) == ["adhoc", "to-b"]
        assert orphans(client) == {}
        assert client.get("/streams/_sync.to-c").status_code == 404  # and its checkpoints
        assert not [c for c in client.app.node.store.list_checkpoints()  # type: ignore[attr-defined]
                    if c.name.startswith("stream/_sync.to-c/")]  # fmt: skip

    files.write(("to-b", "b"), ("to-c", "c"))  # declared again: created anew
    with files.serve() as client:
        assert sorted(processors(client)) == ["adhoc", "to-b", "to-c"]


def test_an_orphan_is_deleted_through_the_api(tmp_path: Path) -> None:
    files = Files(tmp_path)
    files.write(("to-b", "b"))
    with files.serve():
        pass
    files.write()
    with files.serve() as client:
        assert "to-b" in orphans(client)
        assert client.delete("/sync/processors/to-b").status_code == 200
        assert orphans(client) == {} and processors(client) == {}


def test_the_file_cannot_take_an_api_processor_nor_target_this_node(tmp_path: Path) -> None:
    files = Files(tmp_path)
    files.write()
    with files.serve() as client:
        made = {"name": "to-b", "targets": [{"node_id": "b", "endpoints": ["http://127.0.0.1:9"]}]}
        assert client.post("/sync/processors", json=made).status_code == 201
    files.write(("to-b", "b"))
    expected = r"kvdb.yaml:\d+: sync.0.name: sync processor 'to-b' was made"
    with pytest.raises(ConfigError, match=expected), files.serve():
        pass
    files.write(("self", "a"))
    with pytest.raises(ConfigError, match="is this node's own id"):
        load_settings(files.path)


def test_a_target_dropped_from_a_processor_releases_its_checkpoint(tmp_path: Path) -> None:
    files = Files(tmp_path)
    two = ENTRY.format(name="out", node="b").replace(
        'targets: [{node_id: b, endpoints: ["http://127.0.0.1:9"]}]',
        'targets: [{node_id: b, endpoints: ["http://127.0.0.1:9"]},'
        ' {node_id: c, endpoints: ["http://127.0.0.1:9"]}]',
    )
    files.path.write_text(f'node: {{id: a, data_dir: "{files.data}"}}\nsync:\n{two}')

    def checkpoints(client: TestClient) -> list[str]:
        store = client.app.node.store  # type: ignore[attr-defined]
        return sorted(c.name for c in store.list_checkpoints() if c.name.startswith("stream/_sync"))

    with files.serve() as client:
        assert checkpoints(client) == ["stream/_sync.out/b", "stream/_sync.out/c"]
    files.write(("out", "b"))
    with files.serve() as client:
        assert checkpoints(client) == ["stream/_sync.out/b"]
