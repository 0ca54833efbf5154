"""The kvdb command beyond keys: stats, streams, bus, pipelines, SQL, sync, backups, dumps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.cli import main
from api.cli.sql import StatementSplitter
from api.client import Client
from kvdb import Store, StoreConfig
from tests.api.conftest import LiveServer
from tests.conftest import eventually_sync
from tests.eventbus import sample_handlers

Capture = pytest.CaptureFixture[str]


def run(capsys: Capture, *args: str) -> tuple[int, str, str]:
    try:
        status = main(list(args))
    except SystemExit as exc:  # usage errors exit 2, as argparse's did
        status = int(exc.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_version_and_url_from_the_environment(
    live_server: LiveServer, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, _ = run(capsys, "--version")
    assert status == 0 and out.startswith("kvdb ")
    monkeypatch.setenv("KVDB_URL", live_server.url)
    assert run(capsys, "put", "a", "1")[0] == 0
    status, out, _ = run(capsys, "stats", "--json")
    doc = json.loads(out)
    assert status == 0 and doc["last_seq"] == 1 and doc["durability"] == "full"
    assert doc["uptime_s"] >= 0 and doc["version"]
    status, out, _ = run(capsys, "stats")
    assert status == 0 and "node_id" in out and "api-node" in out


def test_streams_sql_and_pipelines(
    live_server: LiveServer, capsys: Capture, tmp_path: Path
) -> None:
    url = ("--url", live_server.url)
    config = json.dumps({"key_patterns": ["bids/.*"], "enable_persistence": True})
    assert run(capsys, "streams", "put", "bids", config, *url)[0] == 0
    status, out, _ = run(capsys, "streams", "list", *url)
    assert status == 0 and "bids" in out and "durable" in out
    status, out, _ = run(capsys, "streams", "show", "bids", "--json", *url)
    assert json.loads(out)["name"] == "bids"

    script = tmp_path / "revenue.sql"
    script.write_text(
        "-- a comment; with a semicolon\n"
        "CREATE STREAM bids (bidtime TIMESTAMP, price DOUBLE, supplier STRING,\n"
        "  WATERMARK FOR bidtime AS bidtime - INTERVAL '1' SECOND) WITH (key_pattern = 'bids/.*');\n"
        "CREATE PIPELINE revenue AS SELECT supplier, window_start, SUM(price) AS revenue\n"
        "  FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))\n"
        "  GROUP BY supplier, window_start, window_end EMIT CHANGES;\n"
        "SHOW PIPELINES\n"
    )
    status, out, err = run(capsys, "sql", "-f", str(script), *url)
    assert status == 0, err
    assert "created" in out and "revenue" in out
    with Client(live_server.url) as kv:
        kv.put("bids/1", '{"bidtime": "2020-04-15T08:05:00Z", "price": 4, "supplier": "s1"}')
        eventually_sync(lambda: kv.pipeline_results("revenue")["rows"])
    status, out, _ = run(capsys, "pipelines", "results", "revenue", *url)
    assert status == 0 and "s1" in out and "revenue" in out
    status, out, _ = run(capsys, "pipelines", "list", "--json", *url)
    assert [p["name"] for p in json.loads(out)] == ["revenue"]
    status, _, err = run(capsys, "sql", "-e", "CREATE PIPELINE broken AS SELEC 1;", *url)
    assert status == 1 and "error" in err
    assert run(capsys, "pipelines", "delete", "revenue", *url)[0] == 0


def test_splitter_ends_statements_outside_quotes_and_comments() -> None:
    splitter = StatementSplitter()
    assert splitter.feed("SELECT 'a;b' -- c;d\n, \"x;\" /* ; */") == []
    assert splitter.pending
    assert splitter.feed(";SHOW PIPELINES;") == [
        "SELECT 'a;b' -- c;d\n, \"x;\" /* ; */",
        "SHOW PIPELINES",
    ]
    assert not splitter.pending


def test_dead_letters_redrive_and_replay(live_server: LiveServer, capsys: Capture) -> None:
    url = ("--url", live_server.url)
    sample_handlers.FRAGILE["broken"] = True
    handler = {
        "python": "tests.eventbus.sample_handlers:fragile",
        "retry": {"max_attempts": 1, "initial_delay": 0, "max_delay": 0},
    }
    assert run(capsys, "handlers", "put", "fragile", json.dumps(handler), *url)[0] == 0
    route = {"handler_names": ["fragile"], "priority": 5}
    assert run(capsys, "routes", "put", "all", json.dumps(route), *url)[0] == 0
    with Client(live_server.url) as kv:
        for key in ("ok1", "bad1", "bad2"):
            kv.put(key, "v")
        eventually_sync(lambda: kv.dead_letters()["counts"] == {"fragile": 2})

    status, out, _ = run(capsys, "dead-letters", "list", *url)
    assert status == 0 and "fragile/2" in out and "cannot handle bad1" in out
    status, out, _ = run(capsys, "dead-letters", "show", "fragile/2", "--json", *url)
    assert json.loads(out)["events"][0]["key"] == "bad1"
    status, out, _ = run(capsys, "routes", "list", *url)
    assert status == 0 and "all" in out
    status, out, _ = run(capsys, "handlers", "list", *url)
    assert status == 0 and "fragile" in out

    status, out, _ = run(capsys, "dead-letters", "redrive", "fragile/2", "--json", *url)
    assert status == 1 and json.loads(out)["redriven"] is False  # still broken
    sample_handlers.FRAGILE["broken"] = False
    status, out, _ = run(capsys, "dead-letters", "redrive", "--handler", "fragile", *url)
    assert status == 0 and "re-driven: 2" in out

    status, out, _ = run(
        capsys, "replay", "--handler", "fragile", "--from-seq", "1", "--dry-run", "--json", *url
    )
    doc = json.loads(out)
    assert status == 0 and doc["would_deliver"] == {"fragile": 3} and doc["selected"] == 3
    status, out, _ = run(capsys, "replay", "--route", "all", "--page", "1", *url)
    assert status == 0 and "delivered 3 to fragile" in out
    status, _, err = run(capsys, "replay", *url)
    assert status == 2 and "--handler or --route" in err
    assert run(capsys, "dead-letters", "purge", "--all", *url)[0] == 0


def test_sync_status_and_conflicts(live_server: LiveServer, capsys: Capture) -> None:
    status, out, _ = run(capsys, "sync", "status", "--url", live_server.url)
    assert status == 0 and "no sync processors on this node" in out and "api-node" in out
    status, out, _ = run(capsys, "sync", "status", "--json", "--url", live_server.url)
    assert status == 0 and json.loads(out)["processors"] == []
    status, out, _ = run(capsys, "sync", "conflicts", "--json", "--url", live_server.url)
    assert status == 0 and json.loads(out) == {"conflicts": [], "last_seq": 0}


def test_backup_restore_dump_load(live_server: LiveServer, capsys: Capture, tmp_path: Path) -> None:
    url = ("--url", live_server.url)
    with Client(live_server.url) as kv:
        for n in range(50):
            kv.put(f"k/{n:02}", f"v{n}", content_type="text/plain")
    backup = tmp_path / "node.backup"
    status, out, err = run(capsys, "backup", str(backup), "--json", *url)
    assert status == 0, err
    assert json.loads(out)["seq"] == 50
    status, _, err = run(capsys, "backup", str(backup), *url)
    assert status == 2 and "--force" in err

    status, out, _ = run(
        capsys, "restore", str(backup), "--data-dir", str(tmp_path / "r"), "--json"
    )
    assert status == 0 and json.loads(out)["seq"] == 50
    status, _, err = run(capsys, "restore", str(backup), "--data-dir", str(tmp_path / "r"))
    assert status == 1 and "not an empty directory" in err
    with Store(StoreConfig(data_dir=tmp_path / "r")) as restored:
        entry = restored.get("k/07")
        assert restored.last_seq == 50
        assert entry is not None and entry.value == b"v7"

    dump = tmp_path / "dump.jsonl"
    status, _, err = run(capsys, "dump", str(dump), "--prefix", "k/0", *url)
    assert status == 0 and "dumped 10 keys" in err
    first = json.loads(dump.read_text().splitlines()[0])
    assert first == {"key": "k/00", "value": "v0", "content_type": "text/plain"}
    dump.write_text(dump.read_text().replace('"k/0', '"copy/0'))
    status, _, err = run(capsys, "load", str(dump), "--batch-size", "3", *url)
    assert status == 0 and "loaded 10 keys" in err
    with Client(live_server.url) as kv:
        item = kv.get("copy/05")
        assert item is not None and item.value == b"v5" and item.content_type == "text/plain"
