"""The window table functions in FROM, read into a stream, a time column and a window.

    TABLE(TUMBLE(TABLE s, DESCRIPTOR(ts), size [, offset]))
    TABLE(HOP(TABLE s, DESCRIPTOR(ts), slide, size [, offset]))
    TABLE(SESSION(TABLE s [PARTITION BY k | (k1, k2)], DESCRIPTOR(ts), gap))
    TUMBLE(s, ts, size [, offset])                  -- the short form, also for HOP and SESSION

Arguments may also be named (``DATA =>``, ``TIMECOL =>``, ``SIZE =>``, ``SLIDE =>``,
``OFFSET =>``, ``GAP =>``), as in Flink. Durations are ``INTERVAL 'n' unit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlglot import exp

from ..errors import SqlPlanError, UnsupportedSql
from ..windows import Session, Sliding, Tumbling, WindowSpec
from .catalog import StreamDefinition
from .dialect import Descriptor, NamedArgument, TableArgument, WindowFunction
from .expressions import interval_ms
from .parser import position_of

__all__ = ["WINDOW_COLUMNS", "WindowCall", "read_window_call"]

WINDOW_COLUMNS = ("window_start", "window_end", "window_time")  # what a window function adds

_ARGUMENTS = {
    "TUMBLE": ("DATA", "TIMECOL", "SIZE", "OFFSET"),
    "HOP": ("DATA", "TIMECOL", "SLIDE", "SIZE", "OFFSET"),
    "SESSION": ("DATA", "TIMECOL", "GAP"),
}


@dataclass(frozen=True)
class WindowCall:
    stream: StreamDefinition
    time_column: str
    spec: WindowSpec
    partition: list[str] | None  # SESSION's PARTITION BY columns
    alias: str  # the FROM item's alias, "" if none


class _Reader:
    def __init__(self, streams: Mapping[str, StreamDefinition], sql: str) -> None:
        self.streams = streams
        self.sql = sql

    def fail(self, problem: str, node: exp.Expr) -> SqlPlanError:
        return SqlPlanError(problem, *position_of(node, self.sql))

    def unsupported(self, what: str, hint: str, node: exp.Expr) -> UnsupportedSql:
        return UnsupportedSql(what, hint, *position_of(node, self.sql))

    def function(self, node: exp.Expr) -> tuple[WindowFunction, str]:
        alias = node.alias or ""
        inner = node.this if isinstance(node, exp.TableFromRows | exp.Table) else node
        if isinstance(inner, WindowFunction):
            return inner, alias
        if isinstance(node, exp.Table) and isinstance(inner, exp.Identifier):
            raise self.fail(
                f"FROM {inner.name} has no window; use FROM TABLE(TUMBLE(TABLE {inner.name}, "
                "DESCRIPTOR(<time column>), INTERVAL '1' MINUTE)) (or HOP, SESSION)",
                node,
            )
        if isinstance(node, exp.Subquery):
            raise self.unsupported(
                "a subquery in FROM", "subqueries are only the two sides of a window join", node
            )
        raise self.unsupported(
            f"FROM {node.sql()}", "read FROM a window function: TUMBLE, HOP or SESSION", node
        )

    def arguments(self, function: WindowFunction) -> dict[str, exp.Expr]:
        kind = function.this.name
        if kind not in _ARGUMENTS:
            raise self.unsupported(f"{kind} windows", "use TUMBLE, HOP or SESSION", function)
        names = _ARGUMENTS[kind]
        given: dict[str, exp.Expr] = {}
        named = False
        for position, argument in enumerate(function.expressions):
            if isinstance(argument, NamedArgument):
                named = True
                name, value = argument.this.name, argument.expression
                if name not in names:
                    raise self.fail(
                        f"{kind} has no argument {name}; its arguments are {', '.join(names)}",
                        argument,
                    )
            else:
                if named:
                    raise self.fail("positional arguments cannot follow named ones", argument)
                if position >= len(names):
                    raise self.fail(
                        f"{kind} takes at most {len(names)} arguments: {', '.join(names)}", argument
                    )
                name, value = names[position], argument
            if name in given:
                raise self.fail(f"the argument {name} is given twice", argument)
            given[name] = value
        for name in names:
            if name not in given and name != "OFFSET":
                raise self.fail(f"{kind} needs its {name} argument ({', '.join(names)})", function)
        return given

    def data(self, argument: exp.Expr, kind: str) -> tuple[StreamDefinition, list[str] | None]:
        node = argument
        if isinstance(node, TableArgument):
            name = node.this.name
            node = node.this  # errors point at the name
        elif isinstance(node, exp.Column | exp.Table):
            name = node.name
        else:
            raise self.fail(f"{kind}'s first argument is the stream: TABLE name", node)
        stream = self.streams.get(name) or next(
            (s for n, s in self.streams.items() if n.lower() == name.lower()), None
        )
        if stream is None:
            known = ", ".join(sorted(self.streams)) or "none yet"
            raise self.fail(
                f"unknown stream {name}; create it with CREATE STREAM (known: {known})", node
            )
        if not (isinstance(argument, TableArgument) and argument.args.get("partition_by")):
            return stream, None
        partition = []
        for column in argument.args["partition_by"]:
            resolved = stream.resolve(column.name) if isinstance(column, exp.Column) else None
            if resolved is None:
                raise self.fail(
                    f"PARTITION BY: stream {stream.name} has no column {column.sql()}", column
                )
            partition.append(resolved)
        return stream, partition

    def time_column(self, node: exp.Expr, stream: StreamDefinition) -> str:
        if isinstance(node, Descriptor):
            if len(node.expressions) != 1:
                raise self.fail("DESCRIPTOR names exactly one time column", node)
            node = node.expressions[0]
        if not isinstance(node, exp.Column):
            raise self.fail("the time column is DESCRIPTOR(column)", node)
        column = stream.resolve(node.name)
        if column is None or stream.column_type(column) != "TIMESTAMP":
            what = stream.column_type(column) if column else "not a column"
            raise self.fail(
                f"the time column must be a TIMESTAMP column of stream {stream.name} (or _ts, "
                f"the commit time); {node.name} is {what}",
                node,
            )
        if stream.watermark_column not in (None, column) and column != "_ts":
            raise self.fail(
                f"stream {stream.name}'s watermark is on {stream.watermark_column}; window on "
                f"that column, or declare WATERMARK FOR {column}",
                node,
            )
        return column

    def spec(self, kind: str, given: dict[str, exp.Expr], function: exp.Expr) -> WindowSpec:
        def duration(name: str) -> int:
            ms = interval_ms(given[name], self.fail)
            if ms <= 0 and name != "OFFSET":
                raise self.fail(f"{kind}'s {name} must be positive", given[name])
            return ms

        offset = duration("OFFSET") if "OFFSET" in given else 0
        if kind == "TUMBLE":
            return Tumbling(duration("SIZE"), offset)
        if kind == "HOP":
            size, slide = duration("SIZE"), duration("SLIDE")
            if slide > size:
                raise self.fail(
                    f"HOP's slide ({slide} ms) cannot exceed its size ({size} ms)", function
                )
            return Sliding(size, slide, offset)
        return Session(duration("GAP"))


def read_window_call(
    node: exp.Expr, streams: Mapping[str, StreamDefinition], sql: str
) -> WindowCall:
    """The window table function FROM ``node`` reads, with its arguments checked."""
    reader = _Reader(streams, sql)
    function, alias = reader.function(node)
    kind = function.this.name
    given = reader.arguments(function)
    stream, partition = reader.data(given["DATA"], kind)
    if partition is not None and kind != "SESSION":
        raise reader.fail(
            "PARTITION BY applies to SESSION windows; GROUP BY the columns instead", given["DATA"]
        )
    time_column = reader.time_column(given["TIMECOL"], stream)
    return WindowCall(stream, time_column, reader.spec(kind, given, function), partition, alias)
