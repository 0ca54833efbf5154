"""The ``pipelines:`` section of the YAML: checked at load, started with the node."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from api import Node, load_settings
from api.errors import ConfigError
from compute import Count, StreamPipeline, Tumbling
from tests.conftest import eventually


def clicks_per_page(window_ms: int = 60_000) -> StreamPipeline:
    """A builder the YAML below names: tests.api.test_pipelines_settings:clicks_per_page."""
    return (
        StreamPipeline("clicks_per_page", ["clicks/.*"], event_time="at")
        .key_by("page")
        .window(Tumbling(window_ms))
        .aggregate(n=Count())
    )


def not_a_pipeline() -> str:
    return "surprise"


SQL = """\
  - sql: |
      CREATE STREAM views (page STRING, at TIMESTAMP) WITH (key_pattern = 'views/.*');
      CREATE PIPELINE views_per_page AS SELECT page, window_start, COUNT(*) AS n
        FROM TABLE(TUMBLE(TABLE views, DESCRIPTOR(at), INTERVAL '1' MINUTE))
        GROUP BY page, window_start, window_end;
"""


def write(tmp_path: Path, pipelines: str) -> Path:
    path = tmp_path / "kvdb.yaml"
    path.write_text(f"node:\n  data_dir: {tmp_path / 'data'}\npipelines:\n{pipelines}")
    return path


def test_python_and_sql_pipelines_start_with_the_node(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  - function: tests.api.test_pipelines_settings:clicks_per_page\n"
        "    args: {window_ms: 1000}\n" + SQL,
    )

    async def scenario() -> None:
        for run in range(2):  # the second start resumes both from their state
            async with Node(load_settings(path)) as node:
                assert [p.pipeline_name for p in node.compute.list()] == [
                    "clicks_per_page",
                    "views_per_page",
                ]
                assert node.compute.get("clicks_per_page").origin == "python"
                if run == 0:
                    await node.store.put("clicks/1", orjson.dumps({"page": "home", "at": 1500}))
                processor = node.compute.get("clicks_per_page")
                await eventually(lambda p=processor: p.results().rows, 5)
                assert processor.results().rows[0]["window_start"] == 1000

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("pipelines", "message"),
    [
        (
            "  - function: not a path\n",
            r"kvdb.yaml:4: pipelines.0.function: 'not a path' must be an import path such as 'package.module:function'",
        ),
        (
            "  - function: no_such_module_here:build\n",
            r"pipelines.0.function: cannot import module 'no_such_module_here'",
        ),
        (
            "  - function: tests.api.test_pipelines_settings:nothing\n",
            r"has no attribute 'nothing'",
        ),
        (
            "  - sql: CREATE STREAM s (a INT\n",
            r"kvdb.yaml:4: pipelines.0.sql: in the SQL: line 1, column 23: expected ','",
        ),
        (
            "  - sql: SELECT 1\n",
            r"pipelines.0.sql: in the SQL: line 1, column 1: a SELECT on its own is not supported",
        ),
        ("  - {}\n", r"kvdb.yaml:4: pipelines.0: give either function .* or sql"),
        (  # a file declares what exists (until issue 8 this ran, at every start)
            "  - sql: DROP STREAM nothing\n",
            r"kvdb.yaml:4: pipelines.0.sql: line 1: a file declares what exists, so it may not DROP STREAM",
        ),
        ("  - sql: SHOW STREAMS\n    args: {a: 1}\n", r"pipelines.0: args go with function"),
        (
            "  - function: tests.api.test_pipelines_settings:clicks_per_page\n    kind: python\n",
            r"kvdb.yaml:5: pipelines.0.kind: unknown field",
        ),
    ],
)
def test_errors_name_file_line_field_and_expectation(
    tmp_path: Path, pipelines: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, pipelines))


@pytest.mark.parametrize(
    ("pipelines", "message"),
    [
        (
            "  - function: tests.api.test_pipelines_settings:not_a_pipeline\n",
            r"the builder returned str; it must return a StreamPipeline",
        ),
        (
            "  - function: tests.api.test_pipelines_settings:clicks_per_page\n    args: {colour: red}\n",
            r"the builder raised TypeError",
        ),
        (
            "  - function: tests.api.test_pipelines_settings:clicks_per_page\n"
            "  - function: tests.api.test_pipelines_settings:clicks_per_page\n",
            r"another entry already built a pipeline named 'clicks_per_page'",
        ),
    ],
)
def test_errors_found_when_the_node_starts(tmp_path: Path, pipelines: str, message: str) -> None:
    settings = load_settings(write(tmp_path, pipelines))

    async def start() -> None:
        async with Node(settings):
            pass

    with pytest.raises(ConfigError, match=message):
        asyncio.run(start())


def test_the_shipped_example_loads_and_runs(tmp_path: Path) -> None:
    settings = load_settings(
        Path(__file__).resolve().parents[2] / "config" / "pipelines.example.yaml",
        overrides={"node": {"data_dir": str(tmp_path / "data")}},
    )

    async def scenario() -> None:
        async with Node(settings) as node:
            names = [p.pipeline_name for p in node.compute.list()]
            assert names == ["revenue_per_supplier", "supplier_sessions"]
            doc = {"bidtime": "2020-04-15T08:05:00Z", "price": 4.0, "supplier_id": "s1"}
            await node.store.put("bids/1", orjson.dumps(doc))
            processor = node.compute.get("revenue_per_supplier")
            await eventually(lambda: processor.results().rows, 5)
            assert processor.results().to_json()["rows"][0]["revenue"] == 4.0

    asyncio.run(scenario())
