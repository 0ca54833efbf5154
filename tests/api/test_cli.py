"""The kvdb command against a real server."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.cli import main
from api.client import Client
from kvdb import Put
from tests.api.conftest import LiveServer, make_settings
from tests.conftest import eventually_sync


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_put_get_scan_delete(live_server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    url = ("--url", live_server.url)
    status, out, _ = run(capsys, "put", "greeting/en", "hello", *url)
    assert status == 0 and json.loads(out)["seq"] == 1
    run(capsys, "put", "greeting/fr", "bonjour", *url)

    status, out, _ = run(capsys, "get", "greeting/fr", "--json", *url)
    assert status == 0 and json.loads(out)["value"] == "bonjour"

    status, out, _ = run(capsys, "scan", "--prefix", "greeting/", *url)
    assert [json.loads(line)["key"] for line in out.splitlines()] == ["greeting/en", "greeting/fr"]
    status, out, _ = run(capsys, "scan", "--limit", "1", *url)
    assert len(out.splitlines()) == 1

    status, out, _ = run(capsys, "delete", "greeting/en", *url)
    assert status == 0 and json.loads(out)["seq"] == 3
    status, _, err = run(capsys, "get", "greeting/en", *url)
    assert status == 1 and "not found" in err
    status, _, err = run(capsys, "delete", "greeting/en", *url)
    assert status == 1 and "not found" in err


def test_value_from_stdin_and_raw_output(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"line1\nline2\n")))
    assert run(capsys, "put", "doc", "-", "--url", live_server.url)[0] == 0
    _, out, _ = run(capsys, "get", "doc", "--url", live_server.url)
    assert out == "line1\nline2\n"


def test_errors_are_reported_with_a_status(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "put", "_system", "x", "--url", live_server.url)
    assert status == 1 and "reserved_key" in err
    status, _, err = run(capsys, "put", "k", "v", "--if-version", "1.x", "--url", live_server.url)
    assert status == 1 and "precondition_failed" in err
    status, _, err = run(capsys, "get", "k", "--url", "http://127.0.0.1:9")
    assert status == 1 and "cannot reach kvdb" in err


def test_serve_reports_config_errors(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path))
    assert status == 2 and "refusing to listen on 0.0.0.0" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


# -- #20 ------------------------------------------------------------------------------------------

TOKEN = "cli-admin-token-0123456789"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path, server={"tokens": [{"token": TOKEN, "role": "admin"}]})
    with LiveServer(settings) as server:
        yield server


def test_a_closed_pipe_ends_quietly(secured: LiveServer) -> None:
    env = {**os.environ, "KVDB_URL": secured.url, "KVDB_TOKEN": TOKEN}
    with Client(secured.url, token=TOKEN) as kv:
        kv.batch([Put(f"k/{i:05d}", b"v" * 100) for i in range(5000)])
    for command in ("scan", "watch --since 0"):
        result = subprocess.run(
            f"{sys.executable} -m api.cli {command} | head -1",
            shell=True, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0 and json.loads(result.stdout)["key"] == "k/00000"
        assert result.stderr == "", result.stderr  # no BrokenPipeError traceback


def test_url_and_token_come_from_the_environment(
    secured: LiveServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KVDB_URL", secured.url)
    monkeypatch.setenv("KVDB_TOKEN", TOKEN)
    assert run(capsys, "put", "env", "works")[0] == 0
    assert run(capsys, "get", "env")[1] == "works"


@pytest.mark.parametrize("command", [["get", "k"], ["watch"], ["stats"]])
def test_auth_errors_point_to_the_token_option(
    secured: LiveServer, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    status, _, err = run(capsys, *command, "--url", secured.url)
    assert status == 1
    assert "pass --token TOKEN or set KVDB_TOKEN" in err and "none was given" in err
    assert "Authorization" not in err
    status, _, err = run(capsys, *command, "--url", secured.url, "--token", "wrong-token-000000")
    assert status == 1 and "the one given is not one of its tokens" in err


def test_watch_a_stream_as_a_named_consumer(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with Client(live_server.url) as kv:
        kv.put_stream("jobs", {"enable_persistence": True, "start_from": "earliest"})
        kv.put("job/1", "x")
    url = ("--url", live_server.url)
    status, out, _ = run(
        capsys, "watch", "--stream", "jobs", "--consumer", "billing", "--count", "1", *url
    )
    assert status == 0 and json.loads(out)["key"] == "job/1"
    store = live_server.app.node.store
    eventually_sync(lambda: (c := store.get_checkpoint("stream/jobs/billing")) and c.seq == 1)
