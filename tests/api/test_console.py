"""The web console in a real browser (headless Chromium), against a server on a loopback
port: each test drives a page as a person would and saves a screenshot under its tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.client import Client
from tests.api.browser import chromium_context
from tests.api.conftest import LiveServer, make_settings
from tests.conftest import eventually_sync
from tests.eventbus import sample_handlers

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium_context(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path)) as live:
        yield live


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The pages' Content-Security-Policy must not block what they need.
    page.on("console", lambda m: errors.append(m.text) if "Security Policy" in m.text else None)
    page.set_default_timeout(10_000)
    yield page
    page.close()
    assert not errors, f"script errors in the console: {errors}"


def test_a_written_key_shows_in_the_live_feed(
    server: LiveServer, page: Any, tmp_path: Path
) -> None:
    page.goto(f"{server.url}/ui/#/changes")
    page.wait_for_selector("#changes-status:has-text('live')")
    with Client(server.url) as kv:
        kv.put("users/1", '{"name": "ada"}', content_type="application/json")
        kv.put("users/1", '{"name": "grace"}')
    row = page.locator("#changes-body tr[data-seq='2']")
    row.wait_for()
    assert row.locator("td.type").inner_text() == "UPDATE"
    assert row.locator("td.key").inner_text() == "users/1"
    assert row.locator("td.old").inner_text() == '{"name": "ada"}'
    assert row.locator("td.new").inner_text() == '{"name": "grace"}'

    page.click("#changes-pause")  # paused: nothing new is drawn, then resumed from the seq
    with Client(server.url) as kv:
        kv.put("users/2", "x")
    page.wait_for_selector("#changes-status:has-text('paused at seq 2')")
    assert page.locator("#changes-body tr[data-seq='3']").count() == 0
    page.click("#changes-pause")
    page.locator("#changes-body tr[data-seq='3']").wait_for()
    page.screenshot(path=tmp_path / "live-changes.png", full_page=True)


def test_a_stale_edit_is_refused_and_explained(
    server: LiveServer, page: Any, tmp_path: Path
) -> None:
    with Client(server.url) as kv:
        for n in range(150):
            kv.put(f"items/{n:03}", f"value {n}")
        first = kv.put("config/app", '{"debug": false}', content_type="application/json")
    page.goto(f"{server.url}/ui/#/keys")
    page.fill("#key-prefix", "items/")
    page.press("#key-prefix", "Enter")
    page.wait_for_selector("#key-list td.key:has-text('items/099')")
    page.click("#next-page")  # paging: the second page starts after the first hundred
    page.wait_for_selector("#key-list td.key:has-text('items/100')")

    page.goto(f"{server.url}/ui/#/keys/config%2Fapp")
    page.wait_for_selector(f"#edit-version:has-text('version {first.version}')")
    with Client(server.url) as kv:  # somebody else writes meanwhile
        second = kv.put("config/app", '{"debug": true}', content_type="application/json")
    page.fill("#edit-value", '{"debug": "mine"}')
    page.click("#save-key")
    conflict = page.locator("#conflict")
    conflict.wait_for()
    text = conflict.inner_text()
    assert "changed by someone else" in text
    assert str(first.version) in text and str(second.version) in text
    page.screenshot(path=tmp_path / "stale-edit-412.png", full_page=True)
    with Client(server.url) as kv:
        item = kv.get("config/app")
        assert item is not None and item.value == b'{"debug": true}'  # nothing overwritten

    conflict.locator("button:has-text('Overwrite')").click()
    page.wait_for_selector("#edit-status:has-text('Saved')")
    with Client(server.url) as kv:
        item = kv.get("config/app")
        assert item is not None and item.value == b'{"debug": "mine"}'


def test_a_sql_pipeline_table_updates_live(server: LiveServer, page: Any, tmp_path: Path) -> None:
    page.goto(f"{server.url}/ui/#/pipelines")
    page.fill(
        "#sql-editor",
        "CREATE STREAM bids (bidtime TIMESTAMP, price DOUBLE, supplier STRING,\n"
        "  WATERMARK FOR bidtime AS bidtime - INTERVAL '5' SECOND) WITH (key_pattern = 'bids/.*');\n"
        "CREATE PIPELINE revenue AS SELECT supplier, window_start, window_end,\n"
        "  SUM(price) AS revenue, COUNT(*) AS bids\n"
        "  FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))\n"
        "  GROUP BY supplier, window_start, window_end EMIT CHANGES;",
    )
    page.click("#sql-run")
    page.wait_for_selector("#sql-output :text('created')")
    card = page.locator("[data-pipeline='revenue']")
    card.wait_for()
    card.locator(":text('live')").first.wait_for()
    with Client(server.url) as kv:
        kv.put("bids/1", '{"bidtime": "2020-04-15T08:05:00Z", "price": 4.0, "supplier": "s1"}')
    card.locator("td:has-text('s1')").wait_for()
    cells = card.locator("tbody tr").first.locator("td")
    eventually_sync(lambda: "4" in cells.nth(3).inner_text(), interval=0.02)
    with Client(server.url) as kv:
        kv.put("bids/2", '{"bidtime": "2020-04-15T08:07:00Z", "price": 6.0, "supplier": "s1"}')
        kv.put("bids/3", '{"bidtime": "2020-04-15T08:15:00Z", "price": 1.5, "supplier": "s2"}')
    eventually_sync(
        lambda: card.locator("tbody tr:has-text('s1') td").nth(3).inner_text() == "10",
        interval=0.02,
    )
    assert card.locator("tbody tr:has-text('s1') td").nth(4).inner_text() == "2"
    card.locator("td:has-text('s2')").wait_for()
    assert card.locator("svg.chart rect.bar").count() == 2  # a bar per window
    page.screenshot(path=tmp_path / "pipeline-live.png", full_page=True)


def test_a_dead_letter_is_redriven(server: LiveServer, page: Any, tmp_path: Path) -> None:
    sample_handlers.FRAGILE["broken"] = True
    with Client(server.url) as kv:
        kv.put_handler(
            "fragile",
            {
                "python": "tests.eventbus.sample_handlers:fragile",
                "retry": {"max_attempts": 1, "initial_delay": 0, "max_delay": 0},
            },
        )
        kv.put_route("all", {"handler_names": ["fragile"]})
        kv.put("bad/1", "boom")
        eventually_sync(lambda: kv.dead_letters()["counts"] == {"fragile": 1})
    page.goto(f"{server.url}/ui/#/bus")
    page.wait_for_selector("#dead-letters td:has-text('fragile/1')")
    page.click("#dead-letters tr:has-text('fragile/1')")
    page.wait_for_selector("#dead-letter :text('ValueError: cannot handle bad/1')")
    page.click("#dead-letters button.redrive[data-id='fragile/1']")  # still broken: kept
    page.wait_for_selector("#dead-letter :text('failed again')")

    sample_handlers.FRAGILE["broken"] = False
    page.click("#dead-letters button.redrive[data-id='fragile/1']")
    page.wait_for_selector("#dead-letter :text('delivered')")
    page.wait_for_selector("#dead-letters :text('no dead letters')")
    with Client(server.url) as kv:
        assert kv.dead_letters()["counts"] == {}
    assert page.locator("#bus-handlers td:has-text('fragile')").count() == 1
    page.screenshot(path=tmp_path / "dead-letter-redriven.png", full_page=True)


def test_overview_streams_sync_and_offline_docs(
    server: LiveServer, page: Any, tmp_path: Path
) -> None:
    external: list[str] = []
    local = (server.url, f"blob:{server.url}", "data:")
    page.on("request", lambda r: None if r.url.startswith(local) else external.append(r.url))
    with Client(server.url) as kv:
        kv.put_stream("orders", {"key_patterns": ["orders/.*"], "enable_persistence": True})
        kv.put("orders/1", "x")
    page.goto(f"{server.url}/ui/")
    page.wait_for_selector("#card-node-id :text('api-node')")
    page.wait_for_selector("#card-durability :text('full')")
    page.wait_for_selector("#card-writes svg path.line", state="attached")  # after two samples
    page.screenshot(path=tmp_path / "overview.png", full_page=True)

    page.goto(f"{server.url}/ui/#/streams")
    page.click("td:has-text('orders')")
    page.wait_for_selector("h3:has-text('Stream orders: consumers')")
    page.goto(f"{server.url}/ui/#/sync")
    page.wait_for_selector("#sync-body :text('No sync processors on this node')")
    unreachable = {"node_id": "far", "endpoints": ["http://127.0.0.1:9"]}
    httpx.post(f"{server.url}/sync/processors", json={
        "name": "out", "targets": [unreachable], "retry_delay": "50ms", "max_retry_delay": "200ms",
    }).raise_for_status()  # fmt: skip
    page.wait_for_selector("#sync-body td:has-text('far')")
    page.wait_for_selector("#sync-body .state-unhealthy", timeout=15_000)
    page.screenshot(path=tmp_path / "sync.png", full_page=True)

    page.goto(f"{server.url}/docs")
    page.wait_for_selector(".swagger-ui .opblock-tag:has-text('streams')")
    page.click("#operations-streams-create_stream_streams_post")
    page.wait_for_selector(
        "#operations-streams-create_stream_streams_post :text('enable_persistence')"
    )
    page.screenshot(path=tmp_path / "docs-swagger.png", full_page=False)
    page.goto(f"{server.url}/redoc")
    page.wait_for_selector("redoc h1:has-text('kvdb')")
    page.locator("h2:has-text('Set a key; the body is the value')").wait_for()
    page.screenshot(path=tmp_path / "docs-redoc.png", full_page=False)
    assert not external, f"the console and the docs must not leave the node: {external}"


def test_a_node_with_tokens_prompts_for_one(browser: Any, tmp_path: Path) -> None:
    admin = "a" * 24
    settings = make_settings(tmp_path, server={"tokens": [{"token": admin, "role": "admin"}]})
    with LiveServer(settings) as server:
        page = browser.new_page()
        try:
            page.goto(f"{server.url}/ui/#/overview")
            page.wait_for_selector("#token-dialog[open]")
            assert "requires a bearer token" in page.inner_text("#token-reason")
            page.fill("#token-input", admin)
            page.click("#token-save")
            page.wait_for_selector("#card-node-id :text('api-node')")
            page.goto(f"{server.url}/ui/#/changes")  # the WebSocket carries the token too
            page.wait_for_selector("#changes-status:has-text('live')")
            with Client(server.url, token=admin) as kv:
                kv.put("secret/1", "x")
            page.locator("#changes-body tr[data-seq='1']").wait_for()
            page.screenshot(path=tmp_path / "token-prompt.png", full_page=True)
        finally:
            page.close()
