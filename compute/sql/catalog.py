"""SQL streams: ``CREATE STREAM`` definitions and how change events become their rows.

The keys matching a stream's ``key_pattern`` whose values are JSON objects are its rows: each
INSERT or UPDATE is one row (a DELETE is not). Columns are top-level fields of the new value,
converted to the column's type (a missing field is NULL); a value that cannot be converted
makes the event an invalid record, skipped and counted. Pseudo-columns: ``_key`` (STRING),
``_seq`` (BIGINT), ``_ts`` (the commit time, TIMESTAMP) and ``_type`` (STRING).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlglot import exp

from changestream import ChangeStreamError, InvalidPattern, compile_pattern, parse_origins
from kvdb import ChangeEvent

from ..errors import InvalidRecord, SqlPlanError, UnsupportedSql
from ..timestamps import parse_timestamp
from .dialect import CreateStream
from .expressions import interval_ms
from .parser import Statement, position_of

__all__ = [
    "PSEUDO_COLUMNS",
    "RESULT_TYPES",
    "SQL_TYPES",
    "StreamDefinition",
    "convert_value",
    "define_stream",
    "parse_options",
    "sql_type",
]

SQL_TYPES = ("STRING", "INT", "BIGINT", "DOUBLE", "BOOLEAN", "TIMESTAMP")
RESULT_TYPES = {  # SQL type -> results table column type
    "TIMESTAMP": "timestamp",
    "STRING": "string",
    "INT": "int",
    "BIGINT": "int",
    "DOUBLE": "double",
    "BOOLEAN": "boolean",
}
PSEUDO_COLUMNS = {"_key": "STRING", "_seq": "BIGINT", "_ts": "TIMESTAMP", "_type": "STRING"}
_TYPES = {
    exp.DType.TEXT: "STRING",
    exp.DType.VARCHAR: "STRING",
    exp.DType.CHAR: "STRING",
    exp.DType.NVARCHAR: "STRING",
    exp.DType.INT: "INT",
    exp.DType.SMALLINT: "INT",
    exp.DType.TINYINT: "INT",
    exp.DType.BIGINT: "BIGINT",
    exp.DType.DOUBLE: "DOUBLE",
    exp.DType.FLOAT: "DOUBLE",
    exp.DType.BOOLEAN: "BOOLEAN",
    exp.DType.TIMESTAMP: "TIMESTAMP",
    exp.DType.TIMESTAMPTZ: "TIMESTAMP",
    exp.DType.TIMESTAMPLTZ: "TIMESTAMP",
}


def sql_type(kind: exp.DataType, sql: str) -> str:
    name = _TYPES.get(kind.this)  # type: ignore[call-overload]
    if name is None:
        line, column = position_of(kind, sql)
        raise UnsupportedSql(
            f"the type {kind.this.value}",
            f"columns are {', '.join(SQL_TYPES)} (use DOUBLE for decimals)",
            line,
            column,
        )
    return name


def _to_string(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value).lower() if isinstance(value, bool) else str(value)


def _to_int(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return int(value) if isinstance(value, str) else _reject()


def _to_double(value: Any) -> float:
    if type(value) is float:
        return value
    if isinstance(value, bool):
        raise ValueError
    return float(value) if isinstance(value, int | str) else _reject()


def _to_boolean(value: Any) -> bool:
    if type(value) is bool:
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return _reject()


def _to_timestamp(value: Any) -> int:
    ms = parse_timestamp(value)
    return _reject() if ms is None else ms


def _reject() -> Any:
    raise ValueError


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "STRING": _to_string,
    "INT": _to_int,
    "BIGINT": _to_int,
    "DOUBLE": _to_double,
    "BOOLEAN": _to_boolean,
    "TIMESTAMP": _to_timestamp,
}


def convert_value(value: Any, type_name: str) -> Any:
    """``value`` as ``type_name``, None for NULL; ValueError if it cannot be."""
    if value is None:
        return None
    try:
        return CONVERTERS[type_name](value)
    except (TypeError, OverflowError):
        raise ValueError from None


@dataclass(frozen=True)
class StreamDefinition:
    name: str
    columns: tuple[tuple[str, str], ...]
    key_pattern: str
    watermark_column: str | None
    out_of_orderness: int
    sql: str
    origins: tuple[str, ...] = ()

    def column_type(self, name: str) -> str | None:
        for column, kind in self.columns:
            if column == name:
                return kind
        return PSEUDO_COLUMNS.get(name)

    def resolve(self, name: str) -> str | None:
        """The column called ``name`` (exactly, else case-insensitively if unambiguous)."""
        names = [column for column, _ in self.columns] + list(PSEUDO_COLUMNS)
        if name in names:
            return name
        folded = [column for column in names if column.lower() == name.lower()]
        return folded[0] if len(folded) == 1 else None

    def decoder(self, needed: Iterable[str]) -> Callable[[ChangeEvent], dict[str, Any]]:
        """A decoder of change events into rows holding the ``needed`` columns."""
        wanted = list(dict.fromkeys(needed))
        fields = [(name, CONVERTERS[kind], kind) for name, kind in self.columns if name in wanted]
        pseudo = [name for name in wanted if name in PSEUDO_COLUMNS]
        loads = orjson.loads

        def decode(event: ChangeEvent) -> dict[str, Any]:
            raw = event.new_value
            if raw is None:
                raise InvalidRecord("a DELETE is not a row")
            try:
                doc = loads(raw)
            except orjson.JSONDecodeError:
                raise InvalidRecord("the value is not JSON") from None
            if type(doc) is not dict:
                raise InvalidRecord("the value is not a JSON object")
            row = {}
            for name, convert, kind in fields:
                value = doc.get(name)
                if value is not None:
                    try:
                        value = convert(value)
                    except (ValueError, TypeError, OverflowError):
                        raise InvalidRecord(
                            f"column {name}: expected {kind}, got {str(value)[:60]!r}"
                        ) from None
                row[name] = value
            for name in pseudo:
                row[name] = _pseudo(event, name)
            return row

        return decode


def _pseudo(event: ChangeEvent, name: str) -> Any:
    if name == "_key":
        return event.key
    if name == "_seq":
        return event.seq
    if name == "_ts":
        return event.ts
    return event.type.value


def define_stream(statement: Statement, sql: str) -> StreamDefinition:
    node = statement.node
    assert isinstance(node, CreateStream)
    name = node.this.name

    def fail(problem: str, where: exp.Expr) -> SqlPlanError:
        return SqlPlanError(f"stream {name}: {problem}", *position_of(where, sql))

    columns: list[tuple[str, str]] = []
    for definition in node.expressions:
        column = definition.this.name
        if column.lower() in (c.lower() for c, _ in columns) or column in PSEUDO_COLUMNS:
            raise fail(f"column {column} is defined twice (or is a pseudo-column)", definition)
        columns.append((column, sql_type(definition.args["kind"], sql)))
    if not columns:
        raise fail("a stream needs at least one column", node)
    types = dict(columns)
    watermark_column, out_of_orderness = None, 0
    watermark = node.args.get("watermark")
    if watermark is not None:
        watermark_column = watermark.this.name
        if types.get(watermark_column) != "TIMESTAMP":
            raise fail(
                f"WATERMARK FOR {watermark_column}: it must be a TIMESTAMP column", watermark
            )
        out_of_orderness = _watermark_delay(watermark, watermark_column, fail)
    options = parse_options(node.args.get("properties") or [], fail)
    unknown = set(options) - {"key_pattern", "origins"}
    if unknown:
        raise fail(
            f"unknown option(s) {', '.join(sorted(unknown))}; expected key_pattern and, "
            "optionally, origins",
            node,
        )
    if "key_pattern" not in options:
        raise fail("WITH (key_pattern = '<regex>') is required: it selects the stream's keys", node)
    pattern, where = options["key_pattern"]
    if not isinstance(pattern, str):
        raise fail("key_pattern must be a string", where)
    try:
        compile_pattern(pattern)
    except InvalidPattern as exc:
        raise fail(exc.message, where) from None
    origins: tuple[str, ...] = ()
    if "origins" in options:
        value, where = options["origins"]
        try:
            origins = parse_origins(
                [o.strip() for o in value.split(",") if o.strip()] if isinstance(value, str) else ()
            )
        except ChangeStreamError as exc:
            raise fail(exc.message, where) from None
        if not isinstance(value, str) or not origins:
            raise fail("origins must be a string such as 'local' or 'local, b'", where)
    return StreamDefinition(
        name, tuple(columns), pattern, watermark_column, out_of_orderness, statement.text, origins
    )


def _watermark_delay(
    watermark: exp.Expr, column: str, fail: Callable[[str, exp.Expr], SqlPlanError]
) -> int:
    expression = watermark.expression
    if isinstance(expression, exp.Column) and expression.name == column:
        return 0
    if (
        isinstance(expression, exp.Sub)
        and isinstance(expression.this, exp.Column)
        and expression.this.name == column
        and isinstance(expression.expression, exp.Interval)
    ):
        return interval_ms(expression.expression, fail)
    raise fail(
        f"the watermark must be {column} or {column} - INTERVAL 'n' SECOND (the allowed "
        "out-of-orderness)",
        expression,
    )


def parse_options(
    properties: list[exp.Expr], fail: Callable[[str, exp.Expr], SqlPlanError]
) -> dict[str, tuple[Any, exp.Expr]]:
    """``WITH (name = value, ...)``: literal values as Python values, others as expressions."""
    options: dict[str, tuple[Any, exp.Expr]] = {}
    for item in properties:
        if not isinstance(item, exp.EQ) or not isinstance(item.this, exp.Column | exp.Identifier):
            raise fail("options are name = value pairs", item)
        value = item.expression
        if isinstance(value, exp.Literal):
            options[item.this.name.lower()] = (value.to_py(), value)
        else:
            options[item.this.name.lower()] = (value, value)
    return options
