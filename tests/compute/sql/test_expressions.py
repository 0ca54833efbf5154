"""SQL scalar expressions compiled to functions of a row: NULL logic, coercions, operators."""

from __future__ import annotations

from typing import Any

import pytest
import sqlglot

from compute import SqlPlanError, UnsupportedSql
from compute.sql.dialect import KvdbDialect
from compute.sql.expressions import Scope, compile_expression

COLUMNS = {
    "a": ("a", "INT"),
    "b": ("b", "INT"),
    "x": ("x", "DOUBLE"),
    "s": ("s", "STRING"),
    "t": ("t", "TIMESTAMP"),
    "ok": ("ok", "BOOLEAN"),
}


def evaluate(expression: str, **row: Any) -> Any:
    sql = f"SELECT {expression}"
    node = sqlglot.parse_one(sql, dialect=KvdbDialect).expressions[0]
    compiled = compile_expression(node, Scope(COLUMNS, sql))
    full = dict.fromkeys(COLUMNS) | row
    return compiled.fn(full)


@pytest.mark.parametrize(
    ("expression", "row", "expected"),
    [
        ("a + b * 2", {"a": 1, "b": 3}, 7),
        ("a / b", {"a": 1, "b": 4}, 0.25),
        ("a / b", {"a": 1, "b": 0}, None),
        ("a % b", {"a": 7, "b": 4}, 3),
        ("-a", {"a": 3}, -3),
        ("a + b", {"a": 1, "b": None}, None),
        ("a > 1 AND b > 1", {"a": 2, "b": None}, None),
        ("a > 5 AND b > 1", {"a": 2, "b": None}, False),
        ("a > 1 OR b > 1", {"a": 2, "b": None}, True),
        ("NOT (a > 5 AND b > 1)", {"a": 2, "b": None}, True),
        ("NOT b > 1", {"b": None}, None),
        ("b IS NULL", {"b": None}, True),
        ("b IS NOT NULL", {"b": None}, False),
        ("a IN (1, 2, 3)", {"a": 2}, True),
        ("a IN (1, NULL)", {"a": 2}, None),
        ("a NOT IN (1, 2)", {"a": 5}, True),
        ("a BETWEEN 1 AND 3", {"a": 3}, True),
        ("s LIKE 'ab%'", {"s": "abc"}, True),
        ("s LIKE 'a_c'", {"s": "abbc"}, False),
        ("s LIKE '50.%'", {"s": "50x"}, False),
        ("s ILIKE 'AB%'", {"s": "abc"}, True),
        ("s NOT LIKE '%z'", {"s": "abc"}, True),
        ("t >= '2020-04-15 08:00:00'", {"t": 1586937600000}, True),
        ("t < TIMESTAMP '2020-04-15 08:00:00'", {"t": 1586937600000}, False),
        ("t + INTERVAL '1' MINUTE", {"t": 0}, 60_000),
        ("CAST(s AS INT) + 1", {"s": "41"}, 42),
        ("CAST(s AS INT)", {"s": "nope"}, None),
        ("CAST('2020-04-15T08:00:00Z' AS TIMESTAMP)", {}, 1586937600000),
        ("COALESCE(b, a, 0)", {"a": 3}, 3),
        ("LOWER(s) = 'abc'", {"s": "ABC"}, True),
        ("UPPER(s)", {"s": "abc"}, "ABC"),
        ("CHAR_LENGTH(s)", {"s": "abc"}, 3),
        ("ABS(x)", {"x": -1.5}, 1.5),
        ("ok = TRUE", {"ok": True}, True),
        ("a = NULL", {"a": 1}, None),
    ],
)
def test_expressions(expression: str, row: dict[str, Any], expected: Any) -> None:
    assert evaluate(expression, **row) == expected


@pytest.mark.parametrize(
    ("expression", "error", "message"),
    [
        ("nope + 1", SqlPlanError, r"unknown column nope here; available: a, b, ok, s, t, x"),
        ("s > 1", SqlPlanError, r"cannot compare STRING with INT"),
        ("s + 1", SqlPlanError, r"cannot compute s \+ 1: STRING and INT"),
        ("SUM(a)", SqlPlanError, r"an aggregate \(SUM\(a\)\) is not allowed here"),
        ("SQRT(a)", UnsupportedSql, r"SQRT is not supported"),
        ("a IN (SELECT 1)", UnsupportedSql, r"IN \(SELECT ...\) is not supported"),
        ("s LIKE s", UnsupportedSql, r"LIKE with a non-literal pattern"),
        ("CAST('x' AS TIMESTAMP)", SqlPlanError, r"cannot CAST 'x' AS TIMESTAMP"),
        ("INTERVAL '1' FORTNIGHT", SqlPlanError, r"unknown interval unit FORTNIGHT"),
    ],
)
def test_expression_errors(expression: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as info:
        evaluate(expression)
    assert info.value.line == 1  # type: ignore[attr-defined]
