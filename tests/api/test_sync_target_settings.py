"""The ``sync:`` section's targets of every kind: what they build, and errors naming file,
line and field (a bad DSN scheme, an unknown kind, a missing or misplaced option)."""

from __future__ import annotations

from pathlib import Path

import pytest

from api import load_settings
from api.errors import ConfigError
from sync import SyncConfig
from sync.targets.options import JetStreamOptions, PostgresOptions, RedisOptions

HEAD = "node: {id: a}\nsync:\n  - name: out\n    targets:\n"


def write(tmp_path: Path, targets: str) -> Path:
    path = tmp_path / "kvdb.yaml"
    path.write_text(HEAD + targets)
    return path


def test_every_kind_builds_its_target_config(tmp_path: Path) -> None:
    settings = load_settings(
        write(
            tmp_path,
            """\
      - node_id: b
        endpoints: ["http://127.0.0.1:8081"]
      - kind: jetstream
        name: events
        servers: ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]
        max_age: 7d
        duplicate_window: 30s
        payload: msgpack
      - kind: postgres
        name: mirror
        dsn: postgresql://kvdb@127.0.0.1:5432/app
        schema: replica
        json_values: true
      - {kind: redis, name: cache, url: "redis://127.0.0.1:6379/1", layout: string}
""",
        )
    )
    kvdb, js, pg, redis = settings.sync[0].sync_config().targets
    assert (kvdb.kind, kvdb.id, kvdb.endpoints) == ("kvdb", "b", ("http://127.0.0.1:8081",))
    assert js.id == "events" and js.options == JetStreamOptions(
        servers=("nats://127.0.0.1:4222", "nats://127.0.0.1:4223"),
        max_age_ms=7 * 86_400_000, duplicate_window_ms=30_000, payload="msgpack",
    )  # fmt: skip
    assert pg.options == PostgresOptions(
        dsn="postgresql://kvdb@127.0.0.1:5432/app", schema="replica", json_values=True
    )
    assert redis.options == RedisOptions(url="redis://127.0.0.1:6379/1", layout="string")


def test_a_stored_config_comes_back_the_same(tmp_path: Path) -> None:
    """Processors made through the API are stored as dicts and read at the next start."""
    settings = load_settings(
        write(
            tmp_path,
            """\
      - {kind: jetstream, name: events, subjects: ["kvdb.a.>"]}
      - {kind: postgres, name: mirror, dsn: "postgresql:///app"}
""",
        )
    )
    config = settings.sync[0].sync_config()
    assert SyncConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ("      - {kind: postgres, name: m, dsn: 'mysql://x@h/db'}\n",
         r"kvdb.yaml:5: sync.0.targets.0.dsn: dsn 'mysql://x@h/db' must be a URL with scheme "
         r"postgresql or postgres"),
        ("      - kind: kafka\n        name: k\n",
         r"kvdb.yaml:5: sync.0.targets.0.kind: Input should be 'kvdb', 'jetstream', 'postgres' "
         r"or 'redis'"),
        ("      - kind: postgres\n        name: m\n",
         r"kvdb.yaml:5: sync.0.targets.0: a postgres target needs dsn"),
        ("      - kind: redis\n        name: c\n        dsn: postgresql:///x\n",
         r"kvdb.yaml:7: sync.0.targets.0.dsn: not an option of a redis target \(it is one of "
         r"postgres\)"),
        ("      - {kind: jetstream}\n", r"sync.0.targets.0: a jetstream target needs a name"),
        ("      - {kind: jetstream, name: e, servers: ['http://x:4222']}\n",
         r"sync.0.targets.0.servers: NATS server 'http://x:4222' must be a URL with scheme nats"),
        ("      - {kind: jetstream, name: e, retention: forever}\n",
         r"sync.0.targets.0.retention: Input should be 'limits', 'interest' or 'workqueue'"),
        ("      - {kind: redis, name: c, url: 'http://h'}\n",
         r"sync.0.targets.0.url: url 'http://h' must be a URL with scheme redis"),
        ("      - {kind: postgres, name: m, dsn: 'postgresql:///x', table: 'a;drop'}\n",
         r"sync.0.targets.0: table 'a;drop' must be a plain SQL identifier"),
        ("      - {kind: redis, name: c}\n      - {kind: postgres, name: c, dsn: 'postgres:///x'}\n",
         r"target 'c' is listed twice"),
        ("      - {node_id: b}\n", r"sync.0.targets.0: a kvdb target needs endpoints"),
        ("      - {node_id: b, endpoints: ['http://h'], name: x}\n",
         r"a kvdb target is named by its node_id"),
    ],
)  # fmt: skip
def test_errors_name_file_line_and_field(tmp_path: Path, targets: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, targets))


def test_the_shipped_example_loads() -> None:
    repo = Path(__file__).resolve().parents[2]
    settings = load_settings(repo / "config" / "targets.example.yaml")
    kinds = [t.kind for t in settings.sync[0].sync_config().targets]
    assert kinds == ["jetstream", "postgres", "redis"]
