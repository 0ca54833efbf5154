"""Planning ``CREATE PIPELINE ... AS SELECT`` into a ``StreamPipeline``.

The supported shape is Flink's windowed aggregation over a window table function:

    SELECT <group columns, window_start, window_end, aggregates, expressions of them>
    FROM TABLE(TUMBLE(TABLE s, DESCRIPTOR(ts), size [, offset]))       -- or HOP(..., slide, size)
      | TABLE(SESSION(TABLE s [PARTITION BY k], DESCRIPTOR(ts), gap)) -- or TUMBLE(s, ts, size)
    [WHERE <condition on the stream's columns>]
    GROUP BY window_start, window_end [, columns]

and a window join of two such queries on their group columns and window bounds. The plan is
the Python core's own steps: source (decode the needed columns) -> filter (WHERE) -> key_by
(GROUP BY columns) -> window -> aggregate (the SELECT list, computed per row).
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from ..aggregates import Aggregate, AggregateSet, Avg, Count, Max, Min, Sum
from ..errors import SqlPlanError, UnsupportedSql
from ..pipeline import StreamPipeline
from ..results import Column
from ..windows import Session, WindowSpec
from .catalog import PSEUDO_COLUMNS, RESULT_TYPES, StreamDefinition, parse_options
from .dialect import CreatePipeline
from .expressions import Scope, compile_expression, interval_ms
from .join_planner import plan_window_join
from .parser import Statement, position_of
from .window_functions import WINDOW_COLUMNS, WindowCall, read_window_call

__all__ = ["Aggregation", "PlannedPipeline", "Planner", "plan_pipeline"]


_UNSUPPORTED_CLAUSES = (
    ("having", "HAVING", "filter the results when you read them"),
    ("order", "ORDER BY", "results are ordered by window, then group key"),
    ("limit", "LIMIT", "a pipeline keeps every window's row"),
    ("offset", "OFFSET", "a pipeline keeps every window's row"),
    ("distinct", "SELECT DISTINCT", "GROUP BY the columns instead"),
    ("with_", "WITH (common table expressions)", "write the query inline"),
    ("windows", "the WINDOW clause", "use a window table function in FROM"),
    ("qualify", "QUALIFY", "filter the results when you read them"),
    ("laterals", "LATERAL", "use a window table function in FROM"),
    ("pivots", "PIVOT", "aggregate with GROUP BY"),
)


@dataclass(frozen=True)
class PlannedPipeline:
    name: str
    pipeline: StreamPipeline
    streams: tuple[str, ...]
    sql: str


@dataclass
class Aggregation:
    """One planned windowed aggregation: the pipeline and what its rows hold."""

    pipeline: StreamPipeline
    window: WindowSpec
    stream: StreamDefinition
    group_columns: list[str]
    outputs: list[tuple[str, str, str]]  # (name, SQL type, origin: group:<col> | window_* | value)


class Planner:
    def __init__(self, statement: Statement, streams: Mapping[str, StreamDefinition], sql: str):
        self.statement = statement
        self.streams = streams
        self.sql = sql
        node = statement.node
        assert isinstance(node, CreatePipeline)
        self.node = node
        self.name = node.this.name
        self.options = self._pipeline_options()
        self.used_streams: list[str] = []

    def fail(self, problem: str, node: exp.Expr) -> SqlPlanError:
        return SqlPlanError(problem, *position_of(node, self.sql))

    def unsupported(self, what: str, hint: str, node: exp.Expr) -> UnsupportedSql:
        return UnsupportedSql(what, hint, *position_of(node, self.sql))

    def _pipeline_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"emit": (self.node.args.get("emit") or exp.var("changes")).name}
        for name, (value, where) in parse_options(
            self.node.args.get("properties") or [], self.fail
        ).items():
            if name in ("allowed_lateness", "retention"):
                options[name] = (
                    interval_ms(value, self.fail) if isinstance(value, exp.Expr) else value
                )
                if not isinstance(options[name], int) or options[name] < 0:
                    raise self.fail(f"{name} must be an INTERVAL (or milliseconds) >= 0", where)
            elif name == "start_from":
                if not (value in ("earliest", "latest") or (isinstance(value, int) and value >= 1)):
                    raise self.fail("start_from must be 'earliest', 'latest' or a seq >= 1", where)
                options[name] = value
            else:
                raise self.fail(
                    f"unknown pipeline option {name}; expected allowed_lateness, retention or "
                    "start_from",
                    where,
                )
        return options

    # -- the whole query ----------------------------------------------------------------------

    def plan(self) -> PlannedPipeline:
        query = self.node.expression
        if not isinstance(query, exp.Select):
            raise self.unsupported(f"{query.key.upper()} of queries", "use one SELECT", query)
        if query.args.get("joins"):
            pipeline = plan_window_join(self, query)
        else:
            pipeline = self.aggregation(query, self.name).pipeline
        return PlannedPipeline(
            self.name, pipeline, tuple(dict.fromkeys(self.used_streams)), self.statement.text
        )

    def _version(self) -> str:
        texts = [self.statement.text] + [
            self.streams[s].sql for s in sorted(set(self.used_streams))
        ]
        return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]

    def reject_clauses(self, select: exp.Select, *, allow_joins: bool = False) -> None:
        for arg, what, hint in _UNSUPPORTED_CLAUSES:
            if select.args.get(arg):
                raise self.unsupported(
                    what,
                    hint,
                    select.args[arg] if isinstance(select.args[arg], exp.Expr) else select,
                )
        if select.args.get("joins") and not allow_joins:
            raise self.unsupported(
                "a JOIN here",
                "join two windowed subqueries: FROM (...) a JOIN (...) b ON ...",
                select,
            )

    # -- one windowed aggregation -------------------------------------------------------------

    def aggregation(
        self,
        select: exp.Select,
        label: str,
        *,
        group_order: list[str] | None = None,
        side: bool = False,
    ) -> Aggregation:
        """The pipeline of one windowed aggregation: source (the columns it reads) -> filter
        (WHERE) -> key_by (GROUP BY) -> window -> aggregate (the SELECT list per row)."""
        self.reject_clauses(select)
        call = self._window_call(select)
        stream, time_column, spec, alias = call.stream, call.time_column, call.spec, call.alias
        self.used_streams.append(stream.name)
        row_columns: dict[str, tuple[str, str]] = {}
        for column, kind in (*stream.columns, *PSEUDO_COLUMNS.items()):
            for name in (column, f"{alias}.{column}", f"{stream.name}.{column}"):
                row_columns[name] = (column, kind)
        used: set[str] = {time_column}
        predicate = self._where(select, row_columns, used)
        group_columns = self._group_columns(select, alias, stream, spec, call.partition)
        if group_order is not None:
            group_columns = group_order
        used.update(group_columns)
        slots, aggregates = self._aggregates(select, row_columns, used)
        outputs, described = self._select_list(select, stream, alias, group_columns, slots)

        aggregate_set = AggregateSet(aggregates)
        row = _row_builder(group_columns, aggregate_set, outputs, side=side)
        columns = [Column(name, RESULT_TYPES.get(kind, "any")) for name, kind, _ in described]
        pipeline = self._source(label, stream, time_column, used)
        if predicate is not None:
            check = predicate
            pipeline = pipeline.filter(lambda row: check(row) is True, name="where")
        if group_columns:
            pipeline = pipeline.key_by(_group_key(group_columns), name="group_by", column="$group")
        pipeline = pipeline.window(spec, name="window")
        pipeline = pipeline.aggregate_rows(aggregate_set, row=row, columns=columns, name="select")
        return Aggregation(pipeline, spec, stream, group_columns, described)

    def _window_call(self, select: exp.Select) -> WindowCall:
        source = select.args.get("from_")
        if source is None:
            raise self.fail(
                "a pipeline reads FROM a window function, e.g. FROM TABLE(TUMBLE(TABLE s, "
                "DESCRIPTOR(ts), INTERVAL '1' MINUTE))",
                select,
            )
        return read_window_call(source.this, self.streams, self.sql)

    def _where(
        self, select: exp.Select, row_columns: dict[str, tuple[str, str]], used: set[str]
    ) -> Callable[[dict[str, Any]], Any] | None:
        where = select.args.get("where")
        if where is None:
            return None
        hint = (
            " (window_start and window_end exist only after windowing: filter on the time column)"
        )
        scope = Scope(row_columns, self.sql, context="in WHERE", used=used, hint=hint)
        compiled = compile_expression(where.this, scope)
        if compiled.type not in ("BOOLEAN", "NULL", "ANY"):
            raise self.fail(f"WHERE needs a condition, not a {compiled.type}", where)
        return compiled.fn

    def _aggregates(
        self, select: exp.Select, row_columns: dict[str, tuple[str, str]], used: set[str]
    ) -> tuple[dict[str, tuple[str, str]], dict[str, Aggregate]]:
        """The aggregate calls of the SELECT list: their slots (SQL text -> key, type) and
        the aggregates computing them (COUNT(*) when there is none)."""
        row_scope = Scope(row_columns, self.sql, context="in an aggregate's argument", used=used)
        slots: dict[str, tuple[str, str]] = {}
        aggregates: dict[str, Aggregate] = {}
        for item in select.expressions:
            for call in item.find_all(exp.AggFunc):
                self._aggregate(call, row_scope, slots, aggregates)
        if not aggregates:
            aggregates["$count"] = Count()
        return slots, aggregates

    def _select_list(
        self,
        select: exp.Select,
        stream: StreamDefinition,
        alias: str,
        group_columns: list[str],
        slots: dict[str, tuple[str, str]],
    ) -> tuple[list[tuple[str, Callable[[dict[str, Any]], Any]]], list[tuple[str, str, str]]]:
        """The SELECT list over the window, the group columns and the aggregates' slots:
        ``(name, function of the row)`` and ``(name, SQL type, origin)`` per column."""
        env_columns: dict[str, tuple[str, str]] = {
            name: (name, "TIMESTAMP") for name in WINDOW_COLUMNS
        }
        for column in group_columns:
            kind = stream.column_type(column) or "ANY"
            env_columns[column] = env_columns[f"{alias}.{column}"] = (column, kind)
        out_scope = Scope(
            env_columns, self.sql, aggregates=slots, context="in the SELECT list",
            hint=" (a column must be in GROUP BY or inside an aggregate)",
        )  # fmt: skip
        outputs: list[tuple[str, Callable[[dict[str, Any]], Any]]] = []
        described: list[tuple[str, str, str]] = []
        for item in select.expressions:
            if isinstance(item, exp.Star) or (
                isinstance(item, exp.Column) and isinstance(item.this, exp.Star)
            ):
                raise self.unsupported(
                    "SELECT * in an aggregation",
                    "list the columns: window_start, window_end, the GROUP BY columns and "
                    "aggregates",
                    item,
                )
            expression = item.this if isinstance(item, exp.Alias) else item
            name = item.alias_or_name if isinstance(item, exp.Alias | exp.Column) else item.sql()
            if name in (n for n, _ in outputs):
                raise self.fail(
                    f"the SELECT list has two columns named {name}; give one an alias", item
                )
            compiled = compile_expression(expression, out_scope)
            outputs.append((name, compiled.fn))
            origin = "value"
            if isinstance(expression, exp.Column):
                key = out_scope.resolve(expression)[0]
                origin = key if key in WINDOW_COLUMNS else f"group:{key}"
            described.append((name, compiled.type, origin))
        return outputs, described

    def _source(
        self, label: str, stream: StreamDefinition, time_column: str, used: set[str]
    ) -> StreamPipeline:
        """The pipeline's start: the stream's events, decoded into the ``used`` columns."""
        time_ooo = stream.out_of_orderness if stream.watermark_column == time_column else 0
        return StreamPipeline(
            label,
            [stream.key_pattern],
            decode=stream.decoder(used),
            event_time=time_column,
            out_of_orderness=time_ooo,
            allowed_lateness=self.options.get("allowed_lateness", 0),
            emit=self.options["emit"],
            start_from=self.options.get("start_from", "earliest"),
            version=self._version(),
            origins=stream.origins,
            **({"retention": self.options["retention"]} if "retention" in self.options else {}),
        )

    def _group_columns(
        self,
        select: exp.Select,
        alias: str,
        stream: StreamDefinition,
        spec: WindowSpec,
        partition: list[str] | None,
    ) -> list[str]:
        group = select.args.get("group")
        if group is None:
            raise self.fail(
                "a windowed aggregation needs GROUP BY window_start, window_end", select
            )
        for arg in ("grouping_sets", "cube", "rollup"):
            if group.args.get(arg):
                raise self.unsupported(
                    f"GROUP BY {arg.upper().replace('_', ' ')}", "group by columns", group
                )
        columns: list[str] = []
        window = set()
        for item in group.expressions:
            if not isinstance(item, exp.Column):
                raise self.unsupported("GROUP BY an expression", "group by columns", item)
            if item.name in ("window_start", "window_end") and item.table in ("", alias):
                window.add(item.name)
                continue
            resolved = stream.resolve(item.name)
            if resolved is None or item.table not in ("", alias, stream.name):
                raise self.fail(
                    f"GROUP BY {item.sql()}: stream {stream.name} has no such column", item
                )
            columns.append(resolved)
        if window != {"window_start", "window_end"}:
            raise self.fail("GROUP BY must include window_start and window_end", group)
        if isinstance(spec, Session):
            if partition is None and columns:
                raise self.fail(
                    "SESSION without PARTITION BY makes one sequence of sessions for all rows; to "
                    "group by columns, partition by them: SESSION(TABLE s PARTITION BY col, ...)",
                    group,
                )
            if partition is not None and set(partition) != set(columns):
                raise self.fail(
                    f"GROUP BY columns ({', '.join(columns) or 'none'}) must be the SESSION's "
                    f"PARTITION BY columns ({', '.join(partition)})",
                    group,
                )
        return columns

    def _aggregate(
        self,
        call: exp.AggFunc,
        scope: Scope,
        slots: dict[str, tuple[str, str]],
        aggregates: dict[str, Aggregate],
    ) -> None:
        text = call.sql()
        if text in slots:
            return
        slot = f"${len(slots)}"
        argument = call.this
        if isinstance(call, exp.Count):
            if isinstance(argument, exp.Star):
                aggregate: Aggregate = Count()
            elif isinstance(argument, exp.Distinct):
                raise self.unsupported(
                    "COUNT(DISTINCT ...)",
                    "count rows with COUNT(*) or values with COUNT(col)",
                    call,
                )
            else:
                aggregate = Count(compile_expression(argument, scope).fn)
            kind = "BIGINT"
        elif isinstance(call, exp.Sum | exp.Avg | exp.Min | exp.Max):
            compiled = compile_expression(argument, scope)
            numeric = compiled.type in ("INT", "BIGINT", "DOUBLE", "NULL", "ANY")
            if isinstance(call, exp.Sum | exp.Avg) and not numeric:
                raise self.fail(
                    f"{call.sql_name()} needs numbers; {argument.sql()} is {compiled.type}", call
                )
            classes = {exp.Sum: Sum, exp.Avg: Avg, exp.Min: Min, exp.Max: Max}
            aggregate = classes[type(call)](compiled.fn)
            if isinstance(call, exp.Avg):
                kind = "DOUBLE"
            elif isinstance(call, exp.Sum):
                kind = "DOUBLE" if compiled.type == "DOUBLE" else "BIGINT"
            else:
                kind = compiled.type
        else:
            raise self.unsupported(
                f"the aggregate {call.sql_name()}", "use COUNT, SUM, MIN, MAX or AVG", call
            )
        slots[text] = (slot, kind)
        aggregates[slot] = aggregate


def _group_key(columns: list[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    if len(columns) == 1:
        (column,) = columns
        return lambda row: (row[column],)
    return operator.itemgetter(*columns)


def _row_builder(
    group_columns: list[str],
    aggregates: AggregateSet,
    outputs: list[tuple[str, Callable[[dict[str, Any]], Any]]],
    *,
    side: bool,
) -> Callable[[Any, int, int, Any], dict[str, Any]]:
    result = aggregates.result
    columns = tuple(group_columns)

    def row(key: Any, start: int, end: int, acc: Any) -> dict[str, Any]:
        env = {"window_start": start, "window_end": end, "window_time": end - 1}
        if columns:
            env.update(zip(columns, key, strict=True))
        env.update(result(acc))
        values = {name: fn(env) for name, fn in outputs}
        if side:  # the join reads the window from its sides' rows
            values["$start"], values["$end"] = start, end
        return values

    return row


def plan_pipeline(
    statement: Statement, streams: Mapping[str, StreamDefinition], sql: str
) -> PlannedPipeline:
    """Plan a CREATE PIPELINE statement against ``streams``; raises ``SqlPlanError`` or
    ``UnsupportedSql`` naming where and why."""
    return Planner(statement, streams, sql).plan()
