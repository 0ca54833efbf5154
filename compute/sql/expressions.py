"""Compiling SQL scalar expressions into Python functions of a row (a dict).

Supported: column references, literals (numbers, strings, TRUE/FALSE, NULL, ``TIMESTAMP
'...'``, ``INTERVAL 'n' unit``), ``+ - * / %``, comparisons, ``AND OR NOT`` (three-valued:
NULL is unknown), ``IS [NOT] NULL``, ``[NOT] IN (...)``, ``BETWEEN``, ``[NOT] LIKE``,
``CAST``, ``COALESCE``, ``LOWER``, ``UPPER``, ``CHAR_LENGTH``, ``ABS``. Timestamps are epoch
milliseconds, so ``ts - INTERVAL '5' SECOND`` is arithmetic, and a string compared with a
timestamp is read as one. ``/`` divides exactly (a DOUBLE); any NULL operand gives NULL.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import re2
from sqlglot import exp

from ..errors import SqlPlanError, UnsupportedSql
from ..timestamps import parse_timestamp
from .parser import position_of

__all__ = ["Compiled", "Scope", "compile_expression", "interval_ms"]

Row = dict[str, Any]
Fail = Callable[[str, exp.Expr], SqlPlanError]

_UNIT_MS = {
    "MILLISECOND": 1,
    "SECOND": 1000,
    "MINUTE": 60_000,
    "HOUR": 3_600_000,
    "DAY": 86_400_000,
}


def interval_ms(node: exp.Expr, fail: Fail) -> int:
    """The length of ``INTERVAL 'n' unit`` in milliseconds."""
    if not isinstance(node, exp.Interval):
        raise fail("expected an interval such as INTERVAL '10' MINUTES", node)
    unit = (node.unit.name if node.unit is not None else "").upper().removesuffix("S")
    if unit not in _UNIT_MS:
        raise fail(
            f"unknown interval unit {unit or '(none)'}; use MILLISECOND, SECOND, MINUTE, HOUR or "
            "DAY (singular or plural)",
            node,
        )
    try:
        amount = float(node.this.name)
    except ValueError:
        raise fail(f"the interval amount {node.this.name!r} is not a number", node) from None
    ms = amount * _UNIT_MS[unit]
    if ms != int(ms):
        raise fail("an interval must be whole milliseconds", node)
    return int(ms)


@dataclass(frozen=True)
class Compiled:
    fn: Callable[[Row], Any]
    type: str  # STRING INT BIGINT DOUBLE BOOLEAN TIMESTAMP INTERVAL NULL ANY
    constant: bool = False


class Scope:
    """What names mean in an expression: ``columns`` maps a visible name (``col`` or
    ``alias.col``) to ``(key in the row, type)``; ``aggregates`` maps an aggregate call's SQL
    text to its slot, where aggregates are allowed."""

    def __init__(
        self,
        columns: Mapping[str, tuple[str, str]],
        sql: str,
        *,
        aggregates: Mapping[str, tuple[str, str]] | None = None,
        context: str = "here",
        hint: str = "",
        used: set[str] | None = None,
    ) -> None:
        self.columns = columns
        self.sql = sql
        self.aggregates = aggregates
        self.context = context
        self.hint = hint
        self.used = used  # collects the row keys the expressions read

    def fail(self, problem: str, node: exp.Expr) -> SqlPlanError:
        return SqlPlanError(problem, *position_of(node, self.sql))

    def resolve(self, column: exp.Column) -> tuple[str, str]:
        qualified = f"{column.table}.{column.name}" if column.table else column.name
        folded = [name for name in self.columns if name.lower() == qualified.lower()]
        if qualified in self.columns or len(folded) == 1:
            key, kind = self.columns[qualified if qualified in self.columns else folded[0]]
            if self.used is not None:
                self.used.add(key)
            return key, kind
        available = ", ".join(sorted(self.columns)) or "none"
        raise self.fail(
            f"unknown column {qualified} {self.context}{self.hint}; available: {available}", column
        )


def compile_expression(node: exp.Expr, scope: Scope) -> Compiled:
    return _compile(node, scope)


def _const(value: Any, kind: str) -> Compiled:
    return Compiled(lambda row: value, kind, constant=True)


_NUMERIC = ("INT", "BIGINT", "DOUBLE")


def _compile(node: exp.Expr, scope: Scope) -> Compiled:
    if isinstance(node, exp.Paren):
        return _compile(node.this, scope)
    if isinstance(node, exp.AggFunc):
        return _aggregate_slot(node, scope)
    for compile_kind in (_value, _operation, _function):
        compiled = compile_kind(node, scope)
        if compiled is not None:
            return compiled
    name = node.sql_name() if isinstance(node, exp.Func) else node.key.upper()
    raise UnsupportedSql(
        f"{name}",
        "expressions may use columns, literals, arithmetic, comparisons, AND/OR/NOT, IS NULL, "
        "IN, BETWEEN, LIKE, CAST, COALESCE, LOWER, UPPER, CHAR_LENGTH and ABS",
        *position_of(node, scope.sql),
    )


def _value(node: exp.Expr, scope: Scope) -> Compiled | None:
    """A column or a literal; None if ``node`` is neither."""
    if isinstance(node, exp.Column):
        key, kind = scope.resolve(node)
        return Compiled(operator.itemgetter(key), kind)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return _const(node.this, "STRING")
        number = node.to_py()
        return _const(number, "INT" if isinstance(number, int) else "DOUBLE")
    if isinstance(node, exp.Boolean):
        return _const(bool(node.this), "BOOLEAN")
    if isinstance(node, exp.Null):
        return _const(None, "NULL")
    if isinstance(node, exp.Interval):
        return _const(interval_ms(node, scope.fail), "INTERVAL")
    return None


def _operation(node: exp.Expr, scope: Scope) -> Compiled | None:
    """An operator (arithmetic, comparison, logic, IS NULL, IN, BETWEEN, LIKE); None if
    ``node`` is none of them."""
    if isinstance(node, exp.Neg):
        inner = _compile(node.this, scope)
        return _unary(inner, operator.neg, inner.type)
    if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div | exp.Mod):
        return _arithmetic(node, scope)
    if isinstance(node, exp.EQ | exp.NEQ | exp.GT | exp.GTE | exp.LT | exp.LTE):
        return _comparison(node, scope)
    if isinstance(node, exp.And | exp.Or):
        return _logical(node, scope)
    if isinstance(node, exp.Not):
        fn = _compile(node.this, scope).fn
        return Compiled(lambda row: None if (v := fn(row)) is None else not v, "BOOLEAN")
    if isinstance(node, exp.Is):
        return _is_null(node, scope)
    if isinstance(node, exp.In):
        return _in(node, scope)
    if isinstance(node, exp.Between):
        return _between(node, scope)
    if isinstance(node, exp.Like | exp.ILike):
        return _like(node, scope)
    return None


_SCALAR_FUNCTIONS: dict[type, tuple[Callable[[Any], Any], str | None]] = {
    exp.Lower: (str.lower, "STRING"),
    exp.Upper: (str.upper, "STRING"),
    exp.Length: (len, "BIGINT"),
    exp.Abs: (abs, None),  # None: the type of the argument
}


def _function(node: exp.Expr, scope: Scope) -> Compiled | None:
    """CAST, COALESCE or a scalar function of one argument; None if ``node`` is none of them."""
    if isinstance(node, exp.Cast):
        return _cast(node, scope)
    if isinstance(node, exp.Coalesce):
        return _coalesce(node, scope)
    for node_type, (function, result) in _SCALAR_FUNCTIONS.items():
        if isinstance(node, node_type):
            inner = _compile(node.this, scope)
            return _unary(inner, function, result or inner.type)
    return None


def _is_null(node: exp.Is, scope: Scope) -> Compiled:
    if not isinstance(node.expression, exp.Null):
        raise UnsupportedSql(
            "IS with anything but NULL", "use = or IS NULL", *position_of(node, scope.sql)
        )
    fn = _compile(node.this, scope).fn
    return Compiled(lambda row: fn(row) is None, "BOOLEAN")


def _between(node: exp.Between, scope: Scope) -> Compiled:
    value = _compile(node.this, scope)
    low = _coerce(_compile(node.args["low"], scope), value)
    high = _coerce(_compile(node.args["high"], scope), value)
    v, lo, hi = value.fn, low.fn, high.fn

    def between(row: Row) -> Any:
        x, a, b = v(row), lo(row), hi(row)
        return None if x is None or a is None or b is None else a <= x <= b

    return Compiled(between, "BOOLEAN")


def _coalesce(node: exp.Coalesce, scope: Scope) -> Compiled:
    parts = [_compile(part, scope) for part in [node.this, *node.expressions]]
    fns = [part.fn for part in parts]

    def coalesce(row: Row) -> Any:
        for fn in fns:
            value = fn(row)
            if value is not None:
                return value
        return None

    kinds = {part.type for part in parts} - {"NULL"}
    return Compiled(coalesce, kinds.pop() if len(kinds) == 1 else "ANY")


def _aggregate_slot(node: exp.Expr, scope: Scope) -> Compiled:
    if scope.aggregates is None:
        raise scope.fail(f"an aggregate ({node.sql()}) is not allowed {scope.context}", node)
    slot = scope.aggregates.get(node.sql())
    if slot is None:
        raise scope.fail(f"the aggregate {node.sql()} is not computed {scope.context}", node)
    key, kind = slot
    return Compiled(operator.itemgetter(key), kind)


def _unary(inner: Compiled, function: Callable[[Any], Any], kind: str) -> Compiled:
    fn = inner.fn
    return Compiled(lambda row: None if (v := fn(row)) is None else function(v), kind)


def _cast(node: exp.Cast, scope: Scope) -> Compiled:
    from .catalog import convert_value, sql_type  # catalog compiles watermarks with this module

    target = sql_type(node.to, scope.sql)
    inner = _compile(node.this, scope)
    if inner.constant:
        try:
            value = convert_value(inner.fn({}), target)
        except ValueError:
            raise scope.fail(f"cannot CAST {node.this.sql()} AS {target}", node) from None
        return _const(value, target)
    fn = inner.fn

    def cast(row: Row) -> Any:
        try:
            return convert_value(fn(row), target)
        except ValueError:
            return None  # like TRY_CAST: a value that does not convert is NULL

    return Compiled(cast, target)


def _arithmetic(node: exp.Expr, scope: Scope) -> Compiled:
    left, right = _compile(node.this, scope), _compile(node.expression, scope)
    op = _ARITHMETIC[type(node)]
    kinds = {left.type, right.type}
    if "TIMESTAMP" in kinds:
        kind = "BIGINT" if kinds == {"TIMESTAMP"} else "TIMESTAMP"
    elif isinstance(node, exp.Div) or "DOUBLE" in kinds:
        kind = "DOUBLE"
    elif kinds <= {"INT", "BIGINT", "NULL", "INTERVAL"}:
        kind = "BIGINT" if "BIGINT" in kinds or "INTERVAL" in kinds else "INT"
    else:
        raise scope.fail(f"cannot compute {node.sql()}: {left.type} and {right.type}", node)
    lf, rf = left.fn, right.fn

    def arithmetic(row: Row) -> Any:
        a, b = lf(row), rf(row)
        return None if a is None or b is None else op(a, b)

    return Compiled(arithmetic, kind)


_ARITHMETIC: dict[type, Callable[[Any, Any], Any]] = {
    exp.Add: operator.add,
    exp.Sub: operator.sub,
    exp.Mul: operator.mul,
    exp.Div: lambda a, b: None if b == 0 else a / b,
    exp.Mod: lambda a, b: None if b == 0 else a % b,
}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    exp.EQ: operator.eq,
    exp.NEQ: operator.ne,
    exp.GT: operator.gt,
    exp.GTE: operator.ge,
    exp.LT: operator.lt,
    exp.LTE: operator.le,
}


def _coerce(compiled: Compiled, other: Compiled) -> Compiled:
    """A string literal compared with a timestamp is read as a timestamp."""
    if compiled.constant and compiled.type == "STRING" and other.type == "TIMESTAMP":
        value = parse_timestamp(compiled.fn({}))
        if value is not None:
            return _const(value, "TIMESTAMP")
    return compiled


def _comparable(a: str, b: str) -> bool:
    if "NULL" in (a, b) or "ANY" in (a, b) or a == b:
        return True
    numeric = (*_NUMERIC, "TIMESTAMP", "INTERVAL")
    return a in numeric and b in numeric


def _comparison(node: exp.Expr, scope: Scope) -> Compiled:
    left, right = _compile(node.this, scope), _compile(node.expression, scope)
    left, right = _coerce(left, right), _coerce(right, left)
    if not _comparable(left.type, right.type):
        raise scope.fail(f"cannot compare {left.type} with {right.type} in {node.sql()}", node)
    compare = _COMPARE[type(node)]
    lf, rf = left.fn, right.fn
    if right.constant:
        constant = rf({})
        if constant is None:
            return _const(None, "BOOLEAN")
        return Compiled(
            lambda row: None if (v := lf(row)) is None else compare(v, constant), "BOOLEAN"
        )

    def comparison(row: Row) -> Any:
        a, b = lf(row), rf(row)
        return None if a is None or b is None else compare(a, b)

    return Compiled(comparison, "BOOLEAN")


def _logical(node: exp.Expr, scope: Scope) -> Compiled:
    """AND / OR in three-valued logic: one operand that decides (FALSE for AND, TRUE for OR)
    decides, whatever the other; otherwise a NULL operand makes the result NULL."""
    lf, rf = _compile(node.this, scope).fn, _compile(node.expression, scope).fn
    decides = not isinstance(node, exp.And)

    def logical(row: Row) -> Any:
        a = lf(row)
        if a is decides:
            return decides
        b = rf(row)
        if b is decides:
            return decides
        return None if a is None or b is None else not decides

    return Compiled(logical, "BOOLEAN")


def _in(node: exp.In, scope: Scope) -> Compiled:
    if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
        raise UnsupportedSql(
            "IN (SELECT ...)", "list the values: IN (1, 2, 3)", *position_of(node, scope.sql)
        )
    value = _compile(node.this, scope)
    options = [_coerce(_compile(option, scope), value) for option in node.expressions]
    fn = value.fn
    if all(option.constant for option in options):
        values = [option.fn({}) for option in options]
        has_null = None in values
        members = frozenset(v for v in values if v is not None)

        def member(row: Row) -> Any:
            v = fn(row)
            if v is None:
                return None
            return True if v in members else (None if has_null else False)

        return Compiled(member, "BOOLEAN")
    fns = [option.fn for option in options]
    return Compiled(
        lambda row: None if (v := fn(row)) is None else any(v == f(row) for f in fns), "BOOLEAN"
    )


def _like(node: exp.Expr, scope: Scope) -> Compiled:
    pattern = _compile(node.expression, scope)
    if not pattern.constant or pattern.type != "STRING":
        raise UnsupportedSql(
            "LIKE with a non-literal pattern", "use a string literal", *position_of(node, scope.sql)
        )
    text = pattern.fn({})
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in text)
    flags = "(?si)" if isinstance(node, exp.ILike) else "(?s)"
    compiled = re2.compile(flags + regex)  # linear time, whatever the pattern
    fn = _compile(node.this, scope).fn
    negate = bool(node.args.get("negate"))  # sqlglot parses NOT LIKE as a negated LIKE
    return Compiled(
        lambda row: (
            None if (v := fn(row)) is None else (compiled.fullmatch(str(v)) is None) is negate
        ),
        "BOOLEAN",
    )
