"""YAML settings: defaults, units, ${ENV} expansion, and errors naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from api import load_settings
from api.errors import ConfigError
from kvdb import Durability

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kvdb.yaml"
    path.write_text(text)
    return path


def test_shipped_default_config_matches_the_built_in_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("KVDB_NODE_ID", "KVDB_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    shipped = load_settings(REPO / "config" / "kvdb.yaml")
    assert shipped.node.store_config() == load_settings().node.store_config()
    assert shipped.server == load_settings().server


def test_units_and_store_config(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
node:
  data_dir: /var/lib/kvdb
  durability: meta_async
  map_size: 2GiB
  limits: {max_value_size: 512KiB, max_batch_size: 1MB}
  retention: {max_age: 36h, max_events: null, compaction_interval: 500ms}
  tombstone_grace: 0
""",
    )
    config = load_settings(path).node.store_config()
    assert config.durability is Durability.META_ASYNC
    assert config.map_size == 2 * 1024**3
    assert config.limits.max_value_bytes == 512 * 1024
    assert config.limits.max_batch_bytes == 1_000_000
    assert config.retention.max_age_ms == 36 * 3_600_000
    assert config.retention.max_events is None
    assert config.retention.compaction_interval_ms == 500
    assert config.tombstone_grace_ms == 0


def test_environment_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KV_PORT", "9191")
    monkeypatch.setenv("KV_TOKEN", "t" * 20)
    path = write(
        tmp_path,
        """
node: {id: "node-${KV_PORT}", data_dir: "${KV_DIR:-/tmp/default}"}
server:
  port: ${KV_PORT}
  tokens: [{token: "${KV_TOKEN}", role: admin}]
  host: "127.0.0.1"
  log_level: "$${literal}"
""".replace('"$${literal}"', "info"),
    )
    settings = load_settings(path)
    assert settings.server.port == 9191
    assert settings.node.id == "node-9191"
    assert str(settings.node.data_dir) == "/tmp/default"
    assert settings.server.tokens[0].token.get_secret_value() == "t" * 20
    assert "t" * 20 not in repr(settings)  # tokens never show up in logs or reprs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "node:\n  retention:\n    max_events: lots\n",
            r"kvdb.yaml:3: node.retention.max_events: .*integer.*'lots'",
        ),
        ("node:\n  durabilty: full\n", r"kvdb.yaml:2: node.durabilty: unknown field"),
        (
            "node:\n  durability: sometimes\n",
            r"kvdb.yaml:2: node.durability: Input should be 'full', 'meta_async' or 'async'",
        ),
        ("node:\n  map_size: 12 parsecs\n", r"kvdb.yaml:2: node.map_size: expected a size such as"),
        ("node:\n  flush_interval: 10\n", r"node.flush_interval: expected a duration with a unit"),
        ("server:\n  port: 70000\n", r"kvdb.yaml:2: server.port: .*less than or equal to 65535"),
        (
            "server:\n  tokens:\n    - token: 0123456789abcdef\n      role: root\n",
            r"kvdb.yaml:4: server.tokens.0.role",
        ),
        (
            "node:\n  id: ${KVDB_TEST_UNSET_VAR}\n",
            r"kvdb.yaml:2: node.id: environment variable KVDB_TEST_UNSET_VAR is not set",
        ),
        ("node: [1, 2\n", r"kvdb.yaml:2: not valid YAML"),
        ("- just\n- a list\n", r"kvdb.yaml:1: expected a mapping of sections"),
        ("streamz: {}\n", r"kvdb.yaml:1: streamz: unknown field"),
    ],
)
def test_errors_name_file_line_field_and_expectation(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text))


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "node:\n  map_size: x\nserver:\n  port: -1\n"))
    assert len(str(info.value).splitlines()) == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_settings(tmp_path / "absent.yaml")


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 9000\n  host: 127.0.0.1\n")
    settings = load_settings(path, overrides={"server": {"port": 9001, "host": None}})
    assert (settings.server.port, settings.server.host) == (9001, "127.0.0.1")


def test_a_file_or_declared_sections_make_a_declaration(tmp_path: Path) -> None:
    """A node started without --config declares nothing (and so changes nothing)."""
    from api.settings import Settings, StreamSettings

    assert not load_settings().declares and not Settings().declares
    assert not load_settings(overrides={"node": {"data_dir": str(tmp_path)}}).declares
    path = tmp_path / "kvdb.yaml"
    path.write_text("prune: true\n")
    from_file = load_settings(path)
    assert from_file.declares and from_file.prune  # an empty file declares: nothing
    assert Settings(streams=(StreamSettings(name="s"),)).declares  # a program's sections


def test_limit_errors_name_settings_that_exist() -> None:
    """Every setting an error names (#17) is a field of the configuration file."""
    from kvdb.config import SETTINGS

    for setting in SETTINGS.values():
        model: object = load_settings()
        for part in setting.split("."):
            assert hasattr(model, part), f"{setting}: no {part!r}"
            model = getattr(model, part)
