"""``kvdb serve`` with a bad ``sync:`` section exits with status 2 and a config error naming
the file, the line and the field (every case is checked in-process in
tests/api/test_sync_settings.py; these run the real command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import free_port

pytestmark = pytest.mark.slow

CASES = {
    "not http": (
        "node: {id: a}\nsync:\n  - name: mesh\n    targets:\n      - node_id: b\n"
        '        endpoints: ["tcp://10.0.0.2:8080"]\n',
        ":6: sync.0.targets.0.endpoints: endpoint 'tcp://10.0.0.2:8080' is not an http(s) URL",
    ),
    "resolver": (
        "node: {id: a}\nsync:\n  - name: mesh\n    resolver: nowhere.at_all:resolve\n"
        '    targets:\n      - node_id: b\n        endpoints: ["http://127.0.0.1:1"]\n',
        ":4: sync.0.resolver: resolver: cannot import module 'nowhere.at_all'",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_kvdb_serve_refuses_a_bad_sync_section(tmp_path: Path, case: str) -> None:
    text, expected = CASES[case]
    config = tmp_path / "kvdb.yaml"
    config.write_text(text)
    command = [
        sys.executable, "-m", "api.cli", "serve", "--config", str(config),
        "--data-dir", str(tmp_path / "data"), "--port", str(free_port()),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "configuration error" in done.stderr
    assert f"{config}{expected}" in done.stderr, done.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was opened
