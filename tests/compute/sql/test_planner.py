"""Planning CREATE STREAM and CREATE PIPELINE: what works, and errors naming where and why."""

from __future__ import annotations

from typing import Any

import pytest

from compute import (
    PipelineRuntime,
    SqlPlanError,
    StreamComputingEngine,
    UnsupportedSql,
)
from compute.sql import parse_script, plan_pipeline
from compute.sql.catalog import StreamDefinition, define_stream
from kvdb import Store

from ..conftest import Events, rows, settle, write

ORDERS = (
    "CREATE STREAM orders (id STRING, customer STRING, amount DOUBLE, items INT, "
    "status STRING, at TIMESTAMP, WATERMARK FOR at AS at - INTERVAL '2' SECOND) "
    "WITH (key_pattern = 'orders/.*')"
)
PAYMENTS = (
    "CREATE STREAM payments (customer STRING, paid DOUBLE, at TIMESTAMP) "
    "WITH (key_pattern = 'payments/.*')"
)


def catalog() -> dict[str, StreamDefinition]:
    streams = {}
    for sql in (ORDERS, PAYMENTS):
        (statement,) = parse_script(sql)
        definition = define_stream(statement, sql)
        streams[definition.name] = definition
    return streams


def plan(select: str) -> PipelineRuntime:
    sql = f"CREATE PIPELINE p AS {select}"
    (statement,) = parse_script(sql)
    return PipelineRuntime(plan_pipeline(statement, catalog(), sql).pipeline)


TUMBLE = "TABLE(TUMBLE(TABLE orders, DESCRIPTOR(at), INTERVAL '10' SECONDS))"


def order(events: Events, **doc: Any) -> Any:
    return events.make(f"orders/{events.seq}", {"at": 1_000, "amount": 1.0, "items": 1, **doc})


def test_where_group_by_aliases_and_expressions_of_aggregates(events: Events) -> None:
    runtime = plan(
        f"SELECT customer AS who, window_start, COUNT(*) AS n, SUM(amount) / COUNT(*) AS mean, "
        f"MAX(amount) - MIN(amount) AS spread, SUM(items * 2) AS doubled, COUNT(status) "
        f"FROM {TUMBLE} WHERE status <> 'cancelled' AND amount BETWEEN 1 AND 100 "
        f"GROUP BY customer, window_start, window_end"
    )
    stream = [
        order(events, customer="c1", amount=10.0, status="paid"),
        order(events, customer="c1", amount=30.0, status=None, items=3),
        order(events, customer="c1", amount=50.0, status="cancelled"),
        order(events, customer="c2", amount=500.0, status="paid"),
        order(events, customer="c2", amount=5.0, status="paid"),
    ]
    runtime.listening = True
    runtime.process(stream)
    assert rows(runtime) == [
        {
            "who": "c1",
            "window_start": 0,
            "n": 1,
            "mean": 10.0,
            "spread": 0.0,
            "doubled": 2,
            "COUNT(status)": 1,
        },
        {
            "who": "c2",
            "window_start": 0,
            "n": 1,
            "mean": 5.0,
            "spread": 0.0,
            "doubled": 2,
            "COUNT(status)": 1,
        },
    ]
    # status NULL: "status <> 'cancelled'" is unknown, so the row is filtered out (SQL logic)
    assert [c.name for c in runtime.columns] == [
        "who",
        "window_start",
        "n",
        "mean",
        "spread",
        "doubled",
        "COUNT(status)",
    ]
    assert [c.type for c in runtime.columns][:2] == ["string", "timestamp"]


def test_pseudo_columns_and_windows_on_the_commit_time(events: Events) -> None:
    runtime = plan(
        "SELECT _type, window_start, COUNT(*) AS n, MAX(_seq) AS last FROM "
        "TABLE(TUMBLE(TABLE orders, DESCRIPTOR(_ts), INTERVAL '1' SECOND)) "
        "WHERE _key LIKE 'orders/%' GROUP BY _type, window_start, window_end"
    )
    runtime.process([order(events), order(events)])
    assert [(r["_type"], r["n"], r["last"]) for r in rows(runtime)] == [("INSERT", 2, 2)]


def test_rows_with_values_of_the_wrong_type_are_invalid_not_fatal(events: Events) -> None:
    runtime = plan(
        f"SELECT window_start, SUM(amount) AS total FROM {TUMBLE} GROUP BY window_start, window_end"
    )
    runtime.process(
        [
            order(events, amount="12.5"),  # a numeric string converts
            order(events, amount="lots"),
            events.make("orders/x", [1, 2]),
            order(events, at="not a time"),
        ]
    )
    stats = runtime.stats()
    assert stats["invalid"] == 3 and [r["total"] for r in rows(runtime)] == [12.5]
    assert "column at: expected TIMESTAMP, got 'not a time'" in stats["last_invalid"]


def test_the_decoder_reads_only_the_columns_the_query_needs(events: Events) -> None:
    runtime = plan(
        f"SELECT window_start, COUNT(*) AS n FROM {TUMBLE} GROUP BY window_start, window_end"
    )
    runtime.process([order(events, amount="lots")])  # amount is not read, so not checked
    assert runtime.stats()["invalid"] == 0


def test_a_window_join_in_sql(events: Events) -> None:
    runtime = plan(
        "SELECT o.customer, o.window_start, o.orders, COALESCE(p.paid, 0) AS paid, "
        "COALESCE(p.paid, 0) / o.total AS ratio FROM "
        f"(SELECT customer, window_start, window_end, COUNT(*) AS orders, SUM(amount) AS total FROM {TUMBLE} "
        " GROUP BY customer, window_start, window_end) o "
        "LEFT JOIN (SELECT customer AS who, window_start, window_end, SUM(paid) AS paid FROM "
        "TABLE(TUMBLE(TABLE payments, DESCRIPTOR(at), INTERVAL '10' SECONDS)) "
        " GROUP BY customer, window_start, window_end) p "
        "ON o.customer = p.who AND o.window_start = p.window_start AND p.window_end = o.window_end"
    )
    runtime.process(
        [
            order(events, customer="c1", amount=10.0),
            order(events, customer="c2", amount=4.0),
            events.make("payments/1", {"customer": "c1", "paid": 5.0, "at": 2_000}),
        ]
    )
    assert rows(runtime) == [
        {"customer": "c1", "window_start": 0, "orders": 1, "paid": 5.0, "ratio": 0.5},
        {"customer": "c2", "window_start": 0, "orders": 1, "paid": 0, "ratio": 0.0},
    ]


@pytest.mark.parametrize(
    ("select", "error", "where", "message"),
    [
        (
            "SELECT window_start FROM TABLE(TUMBLE(TABLE nope, DESCRIPTOR(at), INTERVAL '1' SECOND)) GROUP BY window_start, window_end",
            SqlPlanError,
            66,
            r"unknown stream nope; create it with CREATE STREAM \(known: orders, payments\)",
        ),
        (
            "SELECT window_start FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(amount), INTERVAL '1' SECOND)) GROUP BY window_start, window_end",
            SqlPlanError,
            None,
            r"time column must be a TIMESTAMP column of stream orders.*amount is DOUBLE",
        ),
        (
            f"SELECT window_start FROM {TUMBLE}",
            SqlPlanError,
            None,
            r"needs GROUP BY window_start, window_end",
        ),
        (
            f"SELECT window_start FROM {TUMBLE} GROUP BY window_start",
            SqlPlanError,
            None,
            r"GROUP BY must include window_start and window_end",
        ),
        (
            f"SELECT customer, COUNT(*) FROM {TUMBLE} GROUP BY window_start, window_end",
            SqlPlanError,
            29,
            r"unknown column customer in the SELECT list \(a column must be in GROUP BY or inside an aggregate\)",
        ),
        (
            f"SELECT COUNT(*) FROM {TUMBLE} WHERE window_start > 0 GROUP BY window_start, window_end",
            SqlPlanError,
            None,
            r"unknown column window_start in WHERE \(window_start and window_end exist only after windowing",
        ),
        (
            f"SELECT COUNT(*) AS n, SUM(items) AS n FROM {TUMBLE} GROUP BY window_start, window_end",
            SqlPlanError,
            None,
            r"two columns named n",
        ),
        (
            "SELECT COUNT(*) FROM orders GROUP BY window_start, window_end",
            SqlPlanError,
            43,
            r"FROM orders has no window",
        ),
        (
            f"SELECT COUNT(*) FROM {TUMBLE} GROUP BY window_start, window_end HAVING COUNT(*) > 1",
            UnsupportedSql,
            None,
            r"HAVING is not supported",
        ),
        (
            f"SELECT COUNT(*) FROM {TUMBLE} GROUP BY window_start, window_end ORDER BY 1",
            UnsupportedSql,
            None,
            r"ORDER BY is not supported",
        ),
        (
            f"SELECT COUNT(DISTINCT customer) FROM {TUMBLE} GROUP BY window_start, window_end",
            UnsupportedSql,
            None,
            r"COUNT\(DISTINCT ...\) is not supported",
        ),
        (
            f"SELECT * FROM {TUMBLE} GROUP BY window_start, window_end",
            UnsupportedSql,
            None,
            r"SELECT \* in an aggregation is not supported",
        ),
        (
            f"SELECT STDDEV(amount) FROM {TUMBLE} GROUP BY window_start, window_end",
            UnsupportedSql,
            None,
            r"the aggregate STDDEV is not supported",
        ),
        (
            f"SELECT COUNT(*) FROM {TUMBLE} GROUP BY LOWER(customer), window_start, window_end",
            UnsupportedSql,
            None,
            r"GROUP BY an expression is not supported",
        ),
        (
            "SELECT COUNT(*) FROM TABLE(CUMULATE(TABLE orders, DESCRIPTOR(at), INTERVAL '1' SECOND, INTERVAL '1' MINUTE)) GROUP BY window_start, window_end",
            UnsupportedSql,
            None,
            r"CUMULATE windows is not supported: use TUMBLE, HOP or SESSION",
        ),
        (
            "SELECT COUNT(*) FROM TABLE(HOP(TABLE orders, DESCRIPTOR(at), INTERVAL '2' MINUTE, INTERVAL '1' MINUTE)) GROUP BY window_start, window_end",
            SqlPlanError,
            None,
            r"HOP's slide \(120000 ms\) cannot exceed its size \(60000 ms\)",
        ),
        (
            "SELECT COUNT(*) FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(at))) GROUP BY window_start, window_end",
            SqlPlanError,
            None,
            r"TUMBLE needs its SIZE argument",
        ),
        (
            "SELECT COUNT(*) FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(at), 10)) GROUP BY window_start, window_end",
            SqlPlanError,
            None,
            r"expected an interval such as INTERVAL '10' MINUTES",
        ),
        (
            "SELECT COUNT(*) FROM TABLE(TUMBLE(TABLE orders PARTITION BY customer, DESCRIPTOR(at), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end",
            SqlPlanError,
            None,
            r"PARTITION BY applies to SESSION windows",
        ),
        (
            "SELECT COUNT(*) FROM TABLE(SESSION(TABLE orders, DESCRIPTOR(at), INTERVAL '1' MINUTE)) GROUP BY customer, window_start, window_end",
            SqlPlanError,
            None,
            r"SESSION without PARTITION BY",
        ),
        (
            "SELECT COUNT(*) FROM TABLE(SESSION(TABLE orders PARTITION BY id, DESCRIPTOR(at), INTERVAL '1' MINUTE)) GROUP BY customer, window_start, window_end",
            SqlPlanError,
            None,
            r"must be the SESSION's PARTITION BY columns \(id\)",
        ),
        (
            f"SELECT COUNT(*) FROM {TUMBLE} GROUP BY window_start, window_end UNION SELECT 1",
            UnsupportedSql,
            None,
            r"UNION of queries is not supported",
        ),
        (
            "SELECT COUNT(*) FROM (SELECT 1) GROUP BY window_start, window_end",
            UnsupportedSql,
            None,
            r"a subquery in FROM is not supported",
        ),
        (
            f"SELECT a.n FROM (SELECT COUNT(*) AS n, window_start, window_end FROM {TUMBLE} GROUP BY window_start, window_end) a JOIN (SELECT COUNT(*) AS m, window_start, window_end FROM {TUMBLE} GROUP BY window_start, window_end) b ON a.window_start = b.window_start",
            SqlPlanError,
            None,
            r"a window join needs a.window_start = b.window_start AND a.window_end = b.window_end",
        ),
        (
            f"SELECT a.n FROM (SELECT customer, COUNT(*) AS n, window_start, window_end FROM {TUMBLE} GROUP BY customer, window_start, window_end) a JOIN (SELECT COUNT(*) AS m, window_start, window_end FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(at), INTERVAL '20' SECONDS)) GROUP BY window_start, window_end) b ON a.window_start = b.window_start AND a.window_end = b.window_end",
            SqlPlanError,
            None,
            r"must pair each GROUP BY column of a \(customer\) with one of b \(none\)",
        ),
        (
            f"SELECT a.n FROM (SELECT COUNT(*) AS n, window_start, window_end FROM {TUMBLE} GROUP BY window_start, window_end) a JOIN (SELECT COUNT(*) AS m, window_start, window_end FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(at), INTERVAL '20' SECONDS)) GROUP BY window_start, window_end) b ON a.window_start = b.window_start AND a.window_end = b.window_end",
            SqlPlanError,
            None,
            r"the same TUMBLE or HOP window on both sides",
        ),
        (
            f"SELECT a.n FROM (SELECT COUNT(*) AS n, window_start, window_end FROM {TUMBLE} GROUP BY window_start, window_end) a CROSS JOIN (SELECT COUNT(*) AS m, window_start, window_end FROM {TUMBLE} GROUP BY window_start, window_end) b",
            UnsupportedSql,
            None,
            r"CROSS JOIN is not supported",
        ),
    ],
)
def test_planning_errors(
    select: str, error: type[Exception], where: int | None, message: str
) -> None:
    with pytest.raises(error, match=message) as info:
        plan(select)
    if where is not None:
        assert (info.value.line, info.value.column) == (1, where)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("sql", "error", "message"),
    [
        (
            "CREATE STREAM s (a DECIMAL(10, 2)) WITH (key_pattern = 's/.*')",
            UnsupportedSql,
            r"the type DECIMAL is not supported: columns are STRING, INT.*use DOUBLE",
        ),
        ("CREATE STREAM s (a INT)", SqlPlanError, r"WITH \(key_pattern = '<regex>'\) is required"),
        (
            "CREATE STREAM s (a INT) WITH (key_pattern = '(')",
            SqlPlanError,
            r"stream s: key pattern '\(' is not a valid RE2",
        ),
        (
            "CREATE STREAM s (a INT) WITH (key_pattern = 'x', partitions = 3)",
            SqlPlanError,
            r"unknown option\(s\) partitions; expected key_pattern",
        ),
        (
            "CREATE STREAM s (a INT, a STRING) WITH (key_pattern = 'x')",
            SqlPlanError,
            r"column a is defined twice",
        ),
        (
            "CREATE STREAM s (a INT, WATERMARK FOR a AS a) WITH (key_pattern = 'x')",
            SqlPlanError,
            r"WATERMARK FOR a: it must be a TIMESTAMP column",
        ),
        (
            "CREATE STREAM s (t TIMESTAMP, WATERMARK FOR t AS t + INTERVAL '1' SECOND) WITH (key_pattern = 'x')",
            SqlPlanError,
            r"the watermark must be t or t - INTERVAL",
        ),
    ],
)
def test_stream_definition_errors(sql: str, error: type[Exception], message: str) -> None:
    (statement,) = parse_script(sql)
    with pytest.raises(error, match=message):
        define_stream(statement, sql)


def test_pipeline_options_in_with(events: Events) -> None:
    sql = (
        "CREATE PIPELINE p WITH (allowed_lateness = INTERVAL '5' SECONDS, retention = "
        f"INTERVAL '1' HOUR, start_from = 'latest') AS SELECT COUNT(*) FROM {TUMBLE} "
        "GROUP BY window_start, window_end EMIT FINAL"
    )
    (statement,) = parse_script(sql)
    options = plan_pipeline(statement, catalog(), sql).pipeline.options
    assert (options.allowed_lateness, options.retention, options.start_from, options.emit) == (
        5000, 3_600_000, "latest", "final",
    )  # fmt: skip
    bad = sql.replace("start_from = 'latest'", "colour = 'red'")
    with pytest.raises(SqlPlanError, match="unknown pipeline option colour"):
        plan_pipeline(parse_script(bad)[0], catalog(), bad)


async def test_engine_runs_sql_end_to_end(store: Store, engine: StreamComputingEngine) -> None:
    await engine.sql.execute(ORDERS)
    await write(
        store, [{"customer": "c", "amount": 2.0, "at": "2024-01-01T00:00:01Z"}], prefix="orders"
    )
    (created,) = await engine.sql.execute(
        f"CREATE PIPELINE totals AS SELECT window_start, SUM(amount) AS total FROM {TUMBLE} "
        "GROUP BY window_start, window_end"
    )
    processor = engine.get("totals")
    await settle(processor, store)
    assert processor.results().to_json() == {
        "columns": ["window_start", "total"],
        "rows": [{"window_start": "2024-01-01T00:00:00.000Z", "total": 2.0}],
    }
    assert created.action == "created" and processor.origin == "sql"
