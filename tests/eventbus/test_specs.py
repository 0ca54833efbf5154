"""Handler specs (the built-in kinds that YAML and HTTP describe): validation up front,
python handlers by import path, log files, and the stored form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eventbus import (
    BusSetup,
    EventRoute,
    HandlerSpec,
    InvalidHandler,
    LogTarget,
    PythonTarget,
    RetryPolicy,
    WebhookTarget,
)
from kvdb import Delete, Put, Store
from tests.conftest import eventually
from tests.eventbus import sample_handlers


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            PythonTarget("tests.eventbus.no_such_module:f"),
            "cannot import module 'tests.eventbus.no_such_module'",
        ),
        (PythonTarget("tests.eventbus.sample_handlers:missing"), "has no attribute 'missing'"),
        (PythonTarget("tests.eventbus.sample_handlers:NOT_A_FUNCTION"), "is a int, not a function"),
        (
            PythonTarget("tests.eventbus.sample_handlers"),
            "must be an import path such as 'package.module:function'",
        ),
        (PythonTarget("os.path:join()"), "must be an import path"),
        (WebhookTarget("ftp://x/y"), "must be an absolute http:// or https:// URL"),
        (WebhookTarget("http://x", timeout_ms=0), "timeout_ms must be > 0"),
        (LogTarget(""), "give the path of the log file"),
    ],
)
def test_bad_specs_fail_when_made(target: Any, message: str) -> None:
    with pytest.raises(InvalidHandler, match=message):
        HandlerSpec("h", target)


def test_bad_sizes_and_names() -> None:
    with pytest.raises(InvalidHandler, match="batch_size must be an integer >= 1"):
        HandlerSpec("h", LogTarget("/tmp/x.log"), batch_size=0)
    with pytest.raises(InvalidHandler, match="handler name"):
        HandlerSpec("h h", LogTarget("/tmp/x.log"))


def test_the_stored_form_round_trips() -> None:
    specs = [
        HandlerSpec(
            "w",
            WebhookTarget("https://h.example/x", 2500, {"X-Key": "k"}),
            10,
            50,
            RetryPolicy(max_attempts=7),
        ),
        HandlerSpec("l", LogTarget("/var/log/a.jsonl", fsync=True)),
        HandlerSpec("p", PythonTarget("tests.eventbus.sample_handlers:on_event")),
    ]
    for spec in specs:
        assert HandlerSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(InvalidHandler, match="exactly one of webhook, log or python"):
        HandlerSpec.from_dict({"name": "x"})


async def test_python_handlers_by_import_path(make_bus: Any, store: Store) -> None:
    sample_handlers.SEEN.clear()
    sample_handlers.BATCHES.clear()
    each = HandlerSpec("each", PythonTarget("tests.eventbus.sample_handlers:on_event"))
    nested = HandlerSpec("nested", PythonTarget("tests.eventbus.sample_handlers:Namespace.nested"))
    batched = HandlerSpec(
        "batched",
        PythonTarget("tests.eventbus.sample_handlers:on_batch"),
        batch_size=2,
        flush_interval_ms=0,
    )
    await make_bus(
        BusSetup(
            handlers=(each, nested, batched),
            routes=(EventRoute("all", handler_names=("each", "nested", "batched")),),
        )
    )
    await store.batch([Put(f"k{i}", b"v") for i in range(3)])
    await eventually(
        lambda: len(sample_handlers.SEEN) == 6 and sum(map(len, sample_handlers.BATCHES)) == 3
    )
    assert sorted(sample_handlers.SEEN) == [-3, -2, -1, 1, 2, 3]
    assert sample_handlers.BATCHES[0] == [1, 2]


async def test_log_handler_appends_json_lines(make_bus: Any, store: Store, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"seq": 0}\n')  # appended to, never truncated
    spec = HandlerSpec("audit", LogTarget(str(path), fsync=True))
    bus = await make_bus(
        BusSetup(handlers=(spec,), routes=(EventRoute("all", handler_names=("audit",)),))
    )
    await store.batch([Put("a", b"1"), Put("b", b"\x00\xff")])
    await store.batch([Delete("a")])
    await eventually(lambda: bus.stats()["audit"].handled_through == 3)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["seq"], e.get("type"), e.get("key")) for e in lines] == [
        (0, None, None),
        (1, "INSERT", "a"),
        (2, "INSERT", "b"),
        (3, "DELETE", "a"),
    ]
    assert lines[2]["encoding"] == "base64" and lines[3]["old_value"] == "1"


async def test_a_log_file_that_cannot_be_opened_is_refused_whole(
    make_bus: Any, tmp_path: Path
) -> None:
    bus = await make_bus()
    spec = HandlerSpec("audit", LogTarget(str(tmp_path / "missing-dir" / "a.log")))
    with pytest.raises(InvalidHandler, match="does not exist; create it or choose another path"):
        await bus.add_handler(spec, persist=True)
    assert bus.handlers() == [] and bus.store.list_system_records("bus/handler/") == []
    assert all("audit" not in s.consumers for s in bus.streams.list())
