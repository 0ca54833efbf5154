"""``kvdb serve`` that cannot start its node says why, plainly, and exits non-zero: the app's
lifespan, the one place that starts the node, hands the reason to the command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kvdb import Store, StoreConfig

pytestmark = pytest.mark.slow


def broken_builder(**args: Any) -> Any:
    """A pipeline builder the YAML below names; it fails when the node starts."""
    raise RuntimeError("the builder is broken")


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "api.cli", "serve", "--port", "0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_a_data_dir_another_process_holds(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with Store(StoreConfig(data_dir=data_dir)):
        result = serve("--data-dir", str(data_dir))
    assert result.returncode == 1, result.stderr
    assert "is in use by another kvdb process" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_configuration_that_fails_when_the_node_starts(tmp_path: Path) -> None:
    config = tmp_path / "kvdb.yaml"
    config.write_text(
        "pipelines:\n  - function: tests.integration.test_startup_errors:broken_builder\n"
    )
    result = serve("--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2, result.stderr
    assert "configuration error" in result.stderr
    assert "the builder raised RuntimeError: the builder is broken" in result.stderr
    assert "Traceback" not in result.stderr
