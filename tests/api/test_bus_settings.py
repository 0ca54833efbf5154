"""The handlers:, routes: and aggregations: YAML sections: what they build, and errors that
name the file, line, field path and expectation (nothing is applied from a bad file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from api import Node, load_settings
from api.errors import ConfigError
from api.settings.bus import bus_setup
from eventbus import EventRoute, HandlerSpec, LogTarget, PythonTarget, RetryPolicy, WebhookTarget
from kvdb import EventType

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kvdb.yaml"
    path.write_text(text)
    return path


def test_sections_become_the_bus_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "s3cret")
    path = write(
        tmp_path,
        f"""
handlers:
  - name: billing
    webhook:
      url: https://billing.example.com/kvdb
      timeout: 2s
      headers: {{Authorization: "Bearer ${{HOOK_TOKEN}}"}}
    batch_size: 50
    flush_interval: 250ms
    retry: {{max_attempts: 8, initial_delay: 200ms, max_delay: 1m, jitter: 1}}
  - name: audit
    log: {{path: "{tmp_path}/audit.jsonl", fsync: true}}
  - name: enrich
    python: tests.eventbus.sample_handlers:on_event
routes:
  - name: orders
    key_patterns: ["orders/.*"]
    event_types: [insert, UPDATE]
    handler_names: [billing, audit]
    priority: 10
    final: true
  - {{name: rest, handler_names: [enrich]}}
aggregations:
  - {{name: per-minute, window: 1m, key_patterns: ["orders/.*"], sum_fields: [total], keep: 5}}
""",
    )
    settings = load_settings(path)
    setup = bus_setup(settings.handlers, settings.routes, settings.aggregations)
    billing, audit, enrich = setup.handlers
    assert billing.target == WebhookTarget(  # type: ignore[union-attr]
        "https://billing.example.com/kvdb", 2000, (("Authorization", "Bearer s3cret"),)
    )
    assert (billing.batch_size, billing.flush_interval_ms) == (50, 250)  # type: ignore[union-attr]
    assert billing.retry == RetryPolicy(8, 200, 60_000, 1.0)  # type: ignore[union-attr]
    assert audit.target == LogTarget(f"{tmp_path}/audit.jsonl", True)  # type: ignore[union-attr]
    assert enrich.target == PythonTarget("tests.eventbus.sample_handlers:on_event")  # type: ignore[union-attr]
    orders, rest = setup.routes
    assert orders.event_types == {EventType.INSERT, EventType.UPDATE}
    assert (orders.priority, orders.final, orders.handler_names) == (10, True, ("billing", "audit"))
    assert rest.key_patterns == () and rest.priority == 0
    (aggregation,) = setup.aggregations
    assert (aggregation.window_ms, aggregation.keep_windows) == (60_000, 5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "handlers:\n  - name: a\n    python: tests.eventbus.sample_handlers:on_event\n"
            "routes:\n  - name: r\n    handler_names: [a, ghost]\n",
            r"kvdb.yaml:6: routes.0.handler_names: unknown handler\(s\) ghost; handlers declared in this file: a",
        ),
        (
            "handlers:\n  - name: a\n    python: no_such_package.handlers:fn\n",
            r"kvdb.yaml:3: handlers.0.python: handler 'a': cannot import module 'no_such_package.handlers'",
        ),
        (
            "handlers:\n  - name: a\n    python: just_a_module\n",
            r"kvdb.yaml:3: handlers.0.python: .*must be an import path such as 'package.module:function'",
        ),
        (
            "handlers:\n  - name: a\n    webhook:\n      url: ftp://files.example.com/in\n",
            r"kvdb.yaml:4: handlers.0.webhook.url: webhook url 'ftp://files.example.com/in' must be an absolute http:// or https:// URL",
        ),
        (
            "handlers:\n  - name: a\n    webhook: {url: 'http://x'}\n    log: {path: /tmp/a.log}\n",
            r"kvdb.yaml:2: handlers.0: give exactly one of webhook, log or python \(this handler has webhook and log\)",
        ),
        (
            "handlers:\n  - name: a\n",
            r"kvdb.yaml:2: handlers.0: give exactly one of webhook, log or python",
        ),
        (
            "handlers:\n  - name: a\n    log: {path: /no/such/dir/a.log}\n",
            r"kvdb.yaml:3: handlers.0.log.path: directory '/no/such/dir' does not exist",
        ),
        (
            "handlers:\n  - name: a\n    python: tests.eventbus.sample_handlers:on_event\n    flush_interval: 10\n",
            r"kvdb.yaml:4: handlers.0.flush_interval: expected a duration with a unit",
        ),
        (
            "handlers:\n  - name: a\n    python: tests.eventbus.sample_handlers:on_event\n    retry: {initial_delay: 2s, max_delay: 1s}\n",
            r"kvdb.yaml:4: handlers.0.retry.max_delay: must be at least initial_delay \(2000 ms\)",
        ),
        (
            "handlers:\n  - {name: a, python: 'tests.eventbus.sample_handlers:on_event'}\n"
            "  - {name: a, python: 'tests.eventbus.sample_handlers:on_event'}\n",
            r"kvdb.yaml:2: handlers.0.name: handler names must be unique; 'a' is declared more than once",
        ),
        (
            "handlers:\n  - {name: a, python: 'tests.eventbus.sample_handlers:on_event'}\n"
            "routes:\n  - name: r\n    key_patterns: ['orders/(']\n    handler_names: [a]\n",
            r"kvdb.yaml:5: routes.0.key_patterns: key pattern 'orders/\(' is not a valid RE2",
        ),
        (
            "handlers:\n  - {name: a, python: 'tests.eventbus.sample_handlers:on_event'}\n"
            "routes:\n  - name: r\n    event_types: [UPSERT]\n    handler_names: [a]\n",
            r"kvdb.yaml:5: routes.0.event_types: unknown event type 'UPSERT'",
        ),
        (
            "routes:\n  - name: r\n    handler_names: []\n",
            r"kvdb.yaml:3: routes.0.handler_names: Tuple should have at least 1 item",
        ),
        (
            "routes:\n  - name: r\n    handlers: [a]\n",
            r"kvdb.yaml:3: routes.0.handlers: unknown field",
        ),
        (
            "aggregations:\n  - name: a\n    window: 1m\n    sum_fields: ['a..b']\n",
            r"kvdb.yaml:4: aggregations.0.sum_fields: 'a..b' is not a JSON field name",
        ),
        (
            "aggregations:\n  - name: a\n",
            r"kvdb.yaml:2: aggregations.0.window: Field required",
        ),
    ],
)
def test_errors_name_file_line_field_and_expectation(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text))


def test_the_shipped_example_loads() -> None:
    settings = load_settings(REPO / "config" / "bus.example.yaml")
    setup = bus_setup(settings.handlers, settings.routes, settings.aggregations)
    assert {h.name for h in setup.handlers} >= {"billing", "audit"}
    assert setup.routes and setup.aggregations


async def test_a_start_that_fails_applies_nothing(tmp_path: Path) -> None:
    """A file declaring a handler the API made stops the node at start, with a message naming
    the file, line and field, and applies nothing (its other changes neither), leaving the
    data directory usable. (Until issue 8 the failing case was a stored route whose handler
    left the YAML; such a handler is now orphaned instead, and the route stays valid.)"""
    handler = f"  - {{name: audit, log: {{path: '{tmp_path}/a.log'}}}}\n"
    api_made = f"  - {{name: kept, log: {{path: '{tmp_path}/k.log'}}}}\n"
    path = write(tmp_path, f"node: {{data_dir: '{tmp_path}/data'}}\nhandlers:\n{handler}")
    async with Node(load_settings(path)) as node:
        spec = HandlerSpec("kept", LogTarget(f"{tmp_path}/k.log"))
        await node.bus.add_handler(spec, persist=True)
        await node.bus.add_route(EventRoute("kept", handler_names=("audit",)), persist=True)
    path = write(tmp_path, f"node: {{data_dir: '{tmp_path}/data'}}\nhandlers:\n{api_made}")
    node = Node(load_settings(path))
    with pytest.raises(
        ConfigError,
        match=r"kvdb.yaml:3: handlers.0.name: handler 'kept' was made through the API, so 'config' cannot declare it",
    ):
        await node.start()
    assert not node.started
    path = write(tmp_path, f"node: {{data_dir: '{tmp_path}/data'}}\nhandlers:\n{handler}")
    async with Node(load_settings(path)) as node:  # the store was closed cleanly
        assert [r.name for r in node.bus.routes()] == ["kept"]
        assert node.bus.source("kept") == "stored" and node.bus.source("audit") == "config"
        assert node.orphans() == []  # audit was not orphaned by the refused start
