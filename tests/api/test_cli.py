"""The kvdb command against a real server."""

from __future__ import annotations

import io
import json
import sys

import pytest

from api.cli import main
from tests.api.conftest import LiveServer


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
