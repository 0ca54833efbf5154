"""Parsing a SQL script into statements, with errors that point into the script.

A script is statements separated by ``;``. Each becomes a ``Statement``: its kind
(``CREATE STREAM``, ``CREATE PIPELINE``, ``DROP PIPELINE``, ``DROP STREAM``, ``SHOW
PIPELINES``, ``SHOW STREAMS``), its sqlglot tree and its own text. Errors are
``SqlParseError`` with the 1-based line and column of the offending token and what was
expected there; statements outside the subset are ``UnsupportedSql``, by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from ..errors import SqlParseError, UnsupportedSql
from .dialect import CreatePipeline, CreateStream, DropObject, KvdbDialect, KvdbParser, ShowObjects

__all__ = ["DIALECT", "Statement", "line_and_column", "parse_script", "position_of"]

DIALECT = KvdbDialect()


@dataclass(frozen=True)
class Statement:
    kind: str
    node: exp.Expr
    text: str
    line: int
    column: int

    @property
    def name(self) -> str | None:
        if isinstance(self.node, CreateStream | CreatePipeline | DropObject):
            return str(self.node.this.name)
        return None


def line_and_column(sql: str, offset: int) -> tuple[int, int]:
    """1-based line and column of character ``offset`` of ``sql``."""
    line = sql.count("\n", 0, offset) + 1
    return line, offset - (sql.rfind("\n", 0, offset) + 1) + 1


def position_of(node: exp.Expr, sql: str) -> tuple[int | None, int | None]:
    """Where ``node`` (or the first of its parts that knows) starts in ``sql``."""
    for candidate in node.walk():
        start = candidate.meta.get("start") if candidate.meta else None
        if start is not None:
            return line_and_column(sql, start)
    return None, None


def parse_script(sql: str) -> list[Statement]:
    if not isinstance(sql, str) or not sql.strip():
        raise SqlParseError("the script is empty; send one or more SQL statements", 1, 1)
    tokenizer = DIALECT.tokenizer()
    try:
        tokens = tokenizer.tokenize(sql)
    except TokenError as exc:
        cause = str(exc.__cause__ or exc)
        core = getattr(tokenizer, "_core", tokenizer)  # sqlglot's scanner and its position
        missing = _MISSING_DELIMITER.search(cause)
        offset = int(missing.group(2)) if missing else getattr(core, "_start", 0)
        line, column = line_and_column(sql, offset)
        problem = (
            f"an unterminated string or quoted name (no closing {missing.group(1)})"
            if missing
            else cause
        )
        raise SqlParseError(f"cannot read the SQL here: {problem}", line, column) from exc
    _check_nesting(sql, tokens)
    statements = []
    for chunk in _split(tokens):
        try:
            statements.append(_parse_statement(sql, chunk))
        except RecursionError:
            line, column = line_and_column(sql, chunk[0].start)
            raise SqlParseError(_TOO_DEEP, line, column) from None
    if not statements:
        raise SqlParseError("the script has no statements", 1, 1)
    return statements


MAX_NESTING = 32  # parentheses; sqlglot's parser recurses about 20 frames per level
_TOO_DEEP = (
    f"the statement nests too deeply (more than {MAX_NESTING} levels of parentheses, or an "
    "expression too long to parse): simplify it"
)


def _check_nesting(sql: str, tokens: list[Token]) -> None:
    """Refuse parentheses nested deeper than ``MAX_NESTING`` before parsing: the parser
    would exhaust Python's stack on them."""
    depth = 0
    for token in tokens:
        if token.token_type == TokenType.L_PAREN:
            depth += 1
            if depth > MAX_NESTING:
                raise SqlParseError(_TOO_DEEP, *line_and_column(sql, token.start))
        elif token.token_type == TokenType.R_PAREN:
            depth = max(0, depth - 1)


def _split(tokens: list[Token]) -> list[list[Token]]:
    chunks: list[list[Token]] = [[]]
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            chunks.append([])
        else:
            chunks[-1].append(token)
    return [chunk for chunk in chunks if chunk]


def _parse_statement(sql: str, chunk: list[Token]) -> Statement:
    parser = DIALECT.parser(error_level=ErrorLevel.IMMEDIATE)
    assert isinstance(parser, KvdbParser)
    try:
        nodes = parser.parse(chunk, sql)
    except ParseError as exc:
        raise _translate(exc, parser, sql, chunk) from None
    line, column = line_and_column(sql, chunk[0].start)
    text = sql[chunk[0].start : chunk[-1].end + 1]
    node = nodes[0] if nodes else None
    if node is None:
        raise SqlParseError("expected a statement", line, column)
    return Statement(_kind(node, line, column), node, text, line, column)


def _kind(node: exp.Expr, line: int, column: int) -> str:
    if isinstance(node, CreateStream):
        return "CREATE STREAM"
    if isinstance(node, CreatePipeline):
        return "CREATE PIPELINE"
    if isinstance(node, DropObject):
        return f"DROP {node.args['kind'].name}"
    if isinstance(node, ShowObjects):
        return f"SHOW {node.this.name}"
    if isinstance(node, exp.Query):
        raise UnsupportedSql(
            "a SELECT on its own",
            "queries run continuously here: CREATE PIPELINE name AS SELECT ..., then read GET "
            "/pipelines/name/results",
            line,
            column,
        )
    what = node.key.upper() if not isinstance(node, exp.Command) else str(node.this).upper()
    if isinstance(node, exp.Create | exp.Drop):
        what = f"{what} {node.args.get('kind') or ''}".strip()
    raise UnsupportedSql(
        f"the statement {what}",
        "kvdb's SQL has CREATE STREAM, CREATE PIPELINE, DROP PIPELINE, DROP STREAM, SHOW "
        "PIPELINES and SHOW STREAMS",
        line,
        column,
    )


_MISSING_DELIMITER = re.compile(r"Missing (\S+) from \d+:(\d+)")
_TOKEN_REPR = re.compile(r"<Token token_type: TokenType\.(\w+), text: ([^,]*), .*?>")


def _translate(exc: ParseError, parser: KvdbParser, sql: str, chunk: list[Token]) -> SqlParseError:
    token = parser.error_token
    if token is None or token.token_type == TokenType.SENTINEL or not token.text:
        offset = chunk[-1].end + 1  # the error is at the end of the statement
        near = "the end of the statement"
    else:
        offset = token.start
        near = repr(token.text)
    line, column = line_and_column(sql, min(offset, len(sql)))
    description = str(exc.errors[0]["description"]) if exc.errors else str(exc)
    description = _TOKEN_REPR.sub(
        lambda m: "the end of the statement" if m.group(1) == "SENTINEL" else repr(m.group(2)),
        description,
    )
    if description.startswith("Expecting "):
        problem = f"expected {description.removeprefix('Expecting ')!r} at {near}"
    elif description.startswith("Invalid expression / Unexpected token"):
        problem = f"unexpected {near}; check the syntax before it"
    elif description.startswith("Required keyword"):
        problem = f"incomplete expression at {near}: {description}"
    else:
        problem = f"{description} (at {near})"
    return SqlParseError(problem, line, column)
