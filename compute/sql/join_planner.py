"""Planning a window join: two windowed aggregations joined on their keys and windows.

    SELECT o.customer, o.window_start, o.window_end, o.orders, p.paid
    FROM (SELECT customer, window_start, window_end, COUNT(*) AS orders
          FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
          GROUP BY customer, window_start, window_end) o
    [INNER | LEFT | RIGHT | FULL] JOIN (SELECT customer, window_start, window_end, ... ) p
    ON o.customer = p.customer AND o.window_start = p.window_start AND o.window_end = p.window_end

Both sides need the same TUMBLE or HOP window, and the ON condition pairs every GROUP BY
column of one side with one of the other, plus the window bounds. The outer SELECT list may
use both sides' columns (``alias.column``) in expressions; a missing side's columns are NULL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlglot import exp

from ..pipeline import StreamPipeline
from ..results import Column
from ..windows import Session
from .catalog import RESULT_TYPES
from .expressions import Scope, compile_expression
from .window_functions import WINDOW_COLUMNS

if TYPE_CHECKING:
    from .planner import Aggregation, Planner

__all__ = ["plan_window_join"]


def plan_window_join(planner: Planner, select: exp.Select) -> StreamPipeline:
    """A window join of two windowed aggregations, each an aliased subquery."""
    planner.reject_clauses(select, allow_joins=True)
    for arg, what in (("where", "WHERE"), ("group", "GROUP BY")):
        if select.args.get(arg):
            raise planner.unsupported(
                f"{what} on a window join",
                "put it inside the joined subqueries",
                select.args[arg],
            )
    joins = select.args["joins"]
    if len(joins) != 1:
        raise planner.unsupported(
            "a join of more than two inputs", "join two windowed subqueries", joins[1]
        )
    join = joins[0]
    left_node, right_node = select.args["from_"].this, join.this
    sides = []
    for node in (left_node, right_node):
        if (
            not isinstance(node, exp.Subquery)
            or not isinstance(node.this, exp.Select)
            or not node.alias
        ):
            raise planner.fail(
                "each side of a window join is an aliased subquery: (SELECT ... GROUP BY "
                "window_start, window_end, ...) AS name",
                node,
            )
        sides.append((node.alias, node.this))
    (left_alias, left_query), (right_alias, right_query) = sides
    if left_alias == right_alias:
        raise planner.fail("the two sides of the join need different aliases", right_node)
    how = _join_kind(planner, join)
    pairs = _join_pairs(planner, join, left_alias, right_alias)
    left = planner.aggregation(left_query, f"{planner.name}.{left_alias}", side=True)
    right = planner.aggregation(right_query, f"{planner.name}.{right_alias}", side=True)
    left_origins = {name: origin for name, _, origin in left.outputs}
    right_origins = {name: origin for name, _, origin in right.outputs}
    by_left: dict[str, str] = {}
    window_pairs = set()
    for left_name, right_name, where in pairs:
        lo, ro = left_origins.get(left_name), right_origins.get(right_name)
        if lo is None or ro is None:
            missing = f"{left_alias}.{left_name}" if lo is None else f"{right_alias}.{right_name}"
            raise planner.fail(
                f"the join condition uses {missing}, which that side does not select", where
            )
        if lo in ("window_start", "window_end") and lo == ro:
            window_pairs.add(lo)
        elif lo.startswith("group:") and ro.startswith("group:"):
            by_left[lo.removeprefix("group:")] = ro.removeprefix("group:")
        else:
            raise planner.unsupported(
                "this join condition",
                "join on the group columns and on window_start and window_end",
                where,
            )
    if window_pairs != {"window_start", "window_end"}:
        raise planner.fail(
            f"a window join needs {left_alias}.window_start = {right_alias}.window_start AND "
            f"{left_alias}.window_end = {right_alias}.window_end",
            join,
        )
    if set(by_left) != set(left.group_columns) or sorted(by_left.values()) != sorted(
        right.group_columns
    ):
        raise planner.fail(
            f"the join must pair each GROUP BY column of {left_alias} "
            f"({', '.join(left.group_columns) or 'none'}) with one of {right_alias} "
            f"({', '.join(right.group_columns) or 'none'})",
            join,
        )
    if left.group_columns:  # the right side's key, in the order of the left's
        order = [by_left[column] for column in left.group_columns]
        right = planner.aggregation(
            right_query, f"{planner.name}.{right_alias}", side=True, group_order=order
        )
    if left.window != right.window or isinstance(left.window, Session):
        raise planner.fail("a window join needs the same TUMBLE or HOP window on both sides", join)
    return _joined(planner, select, left, right, left_alias, right_alias, how)


def _join_kind(planner: Planner, join: exp.Join) -> str:
    side = (join.args.get("side") or "").upper()
    kind = (join.args.get("kind") or "").upper()
    if join.args.get("using"):
        raise planner.unsupported(
            "JOIN ... USING",
            "write ON a.col = b.col AND a.window_start = b.window_start AND a.window_end = "
            "b.window_end",
            join,
        )
    if kind in ("CROSS", "SEMI", "ANTI") or join.args.get("method"):
        raise planner.unsupported(
            f"{kind or join.method} JOIN", "use [INNER], LEFT, RIGHT or FULL JOIN", join
        )
    return {"": "inner", "LEFT": "left", "RIGHT": "right", "FULL": "full"}[side]


def _join_pairs(
    planner: Planner, join: exp.Join, left: str, right: str
) -> list[tuple[str, str, exp.Expr]]:
    condition = join.args.get("on")
    if condition is None:
        raise planner.fail("a window join needs ON: the group columns and the window bounds", join)
    pairs: list[tuple[str, str, exp.Expr]] = []
    for part in condition.flatten() if isinstance(condition, exp.And) else [condition]:
        if not (
            isinstance(part, exp.EQ)
            and isinstance(part.this, exp.Column)
            and isinstance(part.expression, exp.Column)
        ):
            raise planner.unsupported(
                "this join condition", "join with equalities of columns: a.col = b.col", part
            )
        a, b = part.this, part.expression
        if (a.table, b.table) == (right, left):
            a, b = b, a
        if (a.table, b.table) != (left, right):
            raise planner.fail(
                f"qualify the join's columns with the aliases {left} and {right}", part
            )
        pairs.append((a.name, b.name, part))
    return pairs


def _joined(
    planner: Planner,
    select: exp.Select,
    left: Aggregation,
    right: Aggregation,
    left_alias: str,
    right_alias: str,
    how: str,
) -> StreamPipeline:
    columns: dict[str, tuple[str, str]] = {name: (name, "TIMESTAMP") for name in WINDOW_COLUMNS}
    names: dict[str, list[str]] = {}
    for alias, side in ((left_alias, left), (right_alias, right)):
        for name, kind, _ in side.outputs:
            columns[f"{alias}.{name}"] = (f"{alias}.{name}", kind)
            names.setdefault(name, []).append(f"{alias}.{name}")
    for name, qualified in names.items():
        if len(qualified) == 1 and name not in columns:
            columns[name] = columns[qualified[0]]
    scope = Scope(
        columns,
        planner.sql,
        context="in the join's SELECT list",
        hint=" (qualify it: alias.column)",
    )
    outputs = []
    described = []
    for item in select.expressions:
        if isinstance(item, exp.Star):
            raise planner.unsupported("SELECT * on a join", "list the columns", item)
        expression = item.this if isinstance(item, exp.Alias) else item
        name = item.alias_or_name if isinstance(item, exp.Alias | exp.Column) else item.sql()
        compiled = compile_expression(expression, scope)
        outputs.append((name, compiled.fn))
        described.append(Column(name, RESULT_TYPES.get(compiled.type, "any")))
    left_names = [name for name, _, _ in left.outputs]
    right_names = [name for name, _, _ in right.outputs]

    def combine(lrow: dict[str, Any] | None, rrow: dict[str, Any] | None) -> dict[str, Any]:
        base = lrow if lrow is not None else rrow
        assert base is not None
        env = {
            "window_start": base["$start"],
            "window_end": base["$end"],
            "window_time": base["$end"] - 1,
        }
        for alias, row, side_names in (
            (left_alias, lrow, left_names),
            (right_alias, rrow, right_names),
        ):
            for name in side_names:
                env[f"{alias}.{name}"] = None if row is None else row[name]
        return {name: fn(env) for name, fn in outputs}

    return left.pipeline.join(
        right.pipeline, how=how, select=combine, columns=described, name=planner.name
    )
