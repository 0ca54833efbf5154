"""Parsing scripts: statements, the table-argument dialect, and errors that say where and what."""

from __future__ import annotations

import pytest

from compute import SqlParseError, UnsupportedSql
from compute.sql import parse_script
from compute.sql.dialect import (
    CreatePipeline,
    CreateStream,
    Descriptor,
    DropObject,
    NamedArgument,
    TableArgument,
    WindowFunction,
)


def test_a_script_is_statements_with_their_own_text() -> None:
    script = """CREATE STREAM s (t TIMESTAMP) WITH (key_pattern = 's/.*');
    -- a comment
    CREATE OR REPLACE PIPELINE p AS SELECT COUNT(*) FROM TUMBLE(s, t, INTERVAL '1' MINUTE)
      GROUP BY window_start, window_end EMIT FINAL;
    DROP PIPELINE IF EXISTS p; DROP STREAM s; SHOW PIPELINES; SHOW STREAMS;"""
    statements = parse_script(script)
    assert [s.kind for s in statements] == [
        "CREATE STREAM", "CREATE PIPELINE", "DROP PIPELINE", "DROP STREAM",
        "SHOW PIPELINES", "SHOW STREAMS",
    ]  # fmt: skip
    assert [s.name for s in statements] == ["s", "p", "p", "s", None, None]
    assert statements[1].text.startswith("CREATE OR REPLACE PIPELINE p AS SELECT")
    assert statements[1].text.endswith("EMIT FINAL")
    assert (statements[1].line, statements[1].column) == (3, 5)
    create = statements[1].node
    assert isinstance(create, CreatePipeline) and create.args["replace"]
    assert create.args["emit"].name == "final"
    assert isinstance(statements[2].node, DropObject) and statements[2].node.args["exists"]


def test_the_sql_2016_table_argument_and_descriptor() -> None:
    (statement,) = parse_script(
        "CREATE PIPELINE p AS SELECT 1 FROM TABLE(SESSION(TABLE Bid PARTITION BY (a, b), "
        "DESCRIPTOR(bidtime), INTERVAL '5' MINUTES)) GROUP BY window_start, window_end"
    )
    function = statement.node.find(WindowFunction)
    assert function is not None and function.this.name == "SESSION"
    table, descriptor, gap = function.expressions
    assert isinstance(table, TableArgument) and table.this.name == "Bid"
    assert [c.name for c in table.args["partition_by"]] == ["a", "b"]
    assert isinstance(descriptor, Descriptor) and descriptor.expressions[0].name == "bidtime"
    assert gap.this.name == "5" and gap.unit.name == "MINUTES"


def test_named_arguments() -> None:
    (statement,) = parse_script(
        "CREATE PIPELINE p AS SELECT 1 FROM TABLE(TUMBLE(DATA => TABLE t, "
        "TIMECOL => DESCRIPTOR(ts), SIZE => INTERVAL '1' HOUR)) GROUP BY window_start, window_end"
    )
    function = statement.node.find(WindowFunction)
    assert function is not None
    assert [a.this.name for a in function.expressions if isinstance(a, NamedArgument)] == [
        "DATA", "TIMECOL", "SIZE",
    ]  # fmt: skip


def test_create_stream_parts() -> None:
    (statement,) = parse_script(
        "CREATE STREAM IF NOT EXISTS s (a STRING, b BIGINT, t TIMESTAMP(3), "
        "WATERMARK FOR t AS t - INTERVAL '5' SECOND) WITH (key_pattern = 's/.*')"
    )
    node = statement.node
    assert isinstance(node, CreateStream) and node.args["exists"]
    assert [c.this.name for c in node.expressions] == ["a", "b", "t"]
    assert node.args["watermark"].this.name == "t"


@pytest.mark.parametrize(
    ("script", "line", "column", "message"),
    [
        ("CREATE STREAM s (a INT, b FOO)", 1, 27, r"expected a column type: STRING, INT"),
        (
            "CREATE STREAM s (a INT",
            1,
            23,
            r"expected ',' and another column, or '\)'.*end of the statement",
        ),
        (
            "SHOW STREAMS;\nCREATE PIPELINE p AS\n  SELECT a FROM t EMIT SOMETIMES",
            3,
            24,
            r"expected CHANGES or FINAL after EMIT",
        ),
        ("CREATE PIPELINE p SELECT 1", 1, 19, r"expected AS and the pipeline's SELECT"),
        ("CREATE PIPELINE p AS\nSELECT a b c FROM t", 2, 12, r"unexpected 'c'"),
        ("CREATE PIPELINE p AS SELECT (a FROM t", 1, 32, r"expected '\)' at 'FROM'"),
        (
            "CREATE STREAM s (a INT) WITH key_pattern = 'x'",
            1,
            30,
            r"expected '\(' and name = value options after WITH",
        ),
        (
            "CREATE PIPELINE p AS\n SELECT 'open",
            2,
            9,
            r"unterminated string or quoted name \(no closing '\)",
        ),
        ("CREATE STREAM (a INT)", 1, 15, r"expected the stream's name"),
    ],
)
def test_parse_errors_name_line_column_and_expectation(
    script: str, line: int, column: int, message: str
) -> None:
    with pytest.raises((SqlParseError, UnsupportedSql), match=message) as info:
        parse_script(script)
    error = info.value
    assert (error.line, error.column) == (line, column), error.message
    assert error.message.startswith(f"line {line}, column {column}: ")


@pytest.mark.parametrize(
    ("script", "construct"),
    [
        ("SELECT 1", "a SELECT on its own"),
        ("CREATE TABLE t (a INT)", "the statement CREATE TABLE"),
        ("INSERT INTO t VALUES (1)", "the statement INSERT"),
        ("SHOW TABLES", "the statement SHOW"),
        ("DROP TABLE t", "the statement DROP TABLE"),
    ],
)
def test_statements_outside_the_subset_are_unsupported_by_name(script: str, construct: str) -> None:
    with pytest.raises(UnsupportedSql) as info:
        parse_script(script)
    assert info.value.construct == construct
    assert info.value.code == "unsupported_sql"
    assert (
        "CREATE STREAM, CREATE PIPELINE" in info.value.message
        or "CREATE PIPELINE" in info.value.message
    )


def test_an_empty_script_is_an_error() -> None:
    with pytest.raises(SqlParseError, match="empty"):
        parse_script("  \n ")
    with pytest.raises(SqlParseError, match="no statements"):
        parse_script(";;")
