"""``KvdbDialect``: sqlglot's parser, extended with what stream SQL needs and sqlglot lacks.

- The SQL:2016 table argument ``TABLE name [PARTITION BY col | (col, ...)]`` inside a table
  function's arguments, and ``DESCRIPTOR(col, ...)``.
- The window table functions ``TUMBLE``, ``HOP``, ``SESSION`` (and ``CUMULATE``, parsed so the
  planner can say it is not supported) with positional or named (``SIZE => ...``) arguments.
- ``CREATE [OR REPLACE] STREAM [IF NOT EXISTS] name (col TYPE, ..., WATERMARK FOR col AS
  expr) WITH (key_pattern = '...')``.
- ``CREATE [OR REPLACE] PIPELINE [IF NOT EXISTS] name [WITH (...)] AS SELECT ... [EMIT
  CHANGES | EMIT FINAL]``.
- ``DROP PIPELINE | STREAM [IF EXISTS] name``, ``SHOW PIPELINES | STREAMS``.

This subclasses sqlglot's ``Parser`` and uses some of its internals (``_match``, ``_curr``,
``_parse_*``), which is why ``pyproject.toml`` pins sqlglot to one minor version.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlglot import exp, parser, tokens
from sqlglot.dialects.dialect import Dialect
from sqlglot.helper import seq_get
from sqlglot.tokens import Token, TokenType

__all__ = [
    "CreatePipeline",
    "CreateStream",
    "Descriptor",
    "DropObject",
    "KvdbDialect",
    "NamedArgument",
    "ShowObjects",
    "TableArgument",
    "WatermarkDefinition",
    "WindowFunction",
]

WINDOW_FUNCTIONS = ("TUMBLE", "HOP", "SESSION", "CUMULATE")


class TableArgument(exp.Expression):
    """``TABLE name [PARTITION BY ...]``: a whole table passed to a table function."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True, "partition_by": False}


class Descriptor(exp.Expression):
    """``DESCRIPTOR(col, ...)``: column names passed to a table function."""

    arg_types: ClassVar[dict[str, bool]] = {"expressions": True}


class NamedArgument(exp.Expression):
    """``NAME => value`` in a table function's arguments."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True, "expression": True}


class WindowFunction(exp.Expression):
    """``TUMBLE(...)``, ``HOP(...)``, ``SESSION(...)`` or ``CUMULATE(...)``; ``this`` is the
    name, ``expressions`` the arguments."""

    arg_types: ClassVar[dict[str, bool]] = {"this": True, "expressions": True}


class WatermarkDefinition(exp.Expression):
    arg_types: ClassVar[dict[str, bool]] = {"this": True, "expression": True}


class CreateStream(exp.Expression):
    arg_types: ClassVar[dict[str, bool]] = {
        "this": True,
        "expressions": False,
        "watermark": False,
        "properties": False,
        "replace": False,
        "exists": False,
    }


class CreatePipeline(exp.Expression):
    arg_types: ClassVar[dict[str, bool]] = {
        "this": True,
        "expression": True,
        "emit": False,
        "properties": False,
        "replace": False,
        "exists": False,
    }


class DropObject(exp.Expression):
    arg_types: ClassVar[dict[str, bool]] = {"this": True, "kind": True, "exists": False}


class ShowObjects(exp.Expression):
    arg_types: ClassVar[dict[str, bool]] = {"this": True}


class KvdbParser(parser.Parser):
    FUNC_TOKENS: ClassVar = {*parser.Parser.FUNC_TOKENS, TokenType.SESSION}
    FUNCTIONS: ClassVar = {
        **parser.Parser.FUNCTIONS,
        "TABLE": lambda args: exp.TableFromRows(this=seq_get(args, 0)),
    }
    FUNCTION_PARSERS: ClassVar = {
        **parser.Parser.FUNCTION_PARSERS,
        **{
            name: (lambda self, n=name: self._parse_window_function(n)) for name in WINDOW_FUNCTIONS
        },
        "DESCRIPTOR": lambda self: self._parse_descriptor(),
    }
    STATEMENT_PARSERS: ClassVar = {
        **parser.Parser.STATEMENT_PARSERS,
        TokenType.CREATE: lambda self: self._parse_kvdb_create(),
        TokenType.DROP: lambda self: self._parse_kvdb_drop(),
        TokenType.SHOW: lambda self: self._parse_kvdb_show(),
    }

    error_token: Token | None = None

    def raise_error(self, message: str, token: Any = None) -> None:
        self.error_token = token or self._curr  # None: at the end of the statement
        super().raise_error(message, token)

    # -- table functions ----------------------------------------------------------------------

    def _parse_window_function(self, name: str) -> exp.Expr:
        token = self._tokens[self._index - 2]  # the name; "(" was consumed too
        arguments = self._parse_csv(self._parse_table_function_argument)
        node = self.expression(WindowFunction(this=exp.var(name), expressions=arguments))
        return node.update_positions(token)

    def _parse_table_function_argument(self) -> exp.Expr | None:
        if self._next is not None and self._next.token_type == TokenType.FARROW:
            token = self._curr
            name = exp.var(token.text.upper())
            self._advance(2)
            value = self._parse_table_function_value()
            if value is None:
                self.raise_error(f"expected a value for the argument {token.text} =>")
            node = self.expression(NamedArgument(this=name, expression=value))
            return node.update_positions(token)
        return self._parse_table_function_value()

    def _parse_table_function_value(self) -> exp.Expr | None:
        if not self._match(TokenType.TABLE):
            return self._parse_lambda()
        token = self._prev
        table = self._parse_table_parts()
        if table is None:
            self.raise_error("expected a stream name after TABLE")
        partition: list[exp.Expr] | None = None
        if self._match(TokenType.PARTITION_BY):
            if self._match(TokenType.L_PAREN, advance=False):
                partition = self._parse_wrapped_csv(self._parse_column)
            else:
                column = self._parse_column()
                if column is None:
                    self.raise_error(
                        "expected a column (or a list in parentheses) after PARTITION BY"
                    )
                partition = [column] if column is not None else None
        node = self.expression(TableArgument(this=table, partition_by=partition))
        return node.update_positions(token)

    def _parse_descriptor(self) -> exp.Expr:
        token = self._tokens[self._index - 2]
        columns = self._parse_csv(self._parse_column)
        if not columns:
            self.raise_error("expected a column name in DESCRIPTOR(...)")
        return self.expression(Descriptor(expressions=columns)).update_positions(token)

    def _parse_table_alias(self, alias_tokens: Any = None) -> exp.TableAlias | None:
        if self._at_emit():  # EMIT CHANGES ends a pipeline's query; it is not an alias
            return None
        return super()._parse_table_alias(alias_tokens)

    def _at_emit(self) -> bool:
        """``EMIT <word>`` is the emit clause (an alias is never followed by a word)."""
        return bool(
            self._curr
            and self._curr.text.upper() == "EMIT"
            and self._next
            and (self._next.token_type == TokenType.VAR or self._next.text.upper() == "FINAL")
        )

    # -- statements ---------------------------------------------------------------------------

    def _parse_kvdb_create(self) -> exp.Expr:
        index = self._index
        replace = bool(self._match_pair(TokenType.OR, TokenType.REPLACE))
        if self._match_text_seq("STREAM"):
            return self._parse_create_stream(replace)
        if self._match_text_seq("PIPELINE"):
            return self._parse_create_pipeline(replace)
        self._retreat(index)
        return self._parse_create()

    def _parse_object_name(self, what: str) -> exp.Expr:
        name = self._parse_id_var(any_token=False)
        if name is None:
            self.raise_error(f"expected the {what}'s name")
        return name  # type: ignore[return-value]

    def _parse_create_stream(self, replace: bool) -> exp.Expr:
        exists = self._parse_exists(not_=True)
        name = self._parse_object_name("stream")
        if not self._match(TokenType.L_PAREN):
            self.raise_error("expected '(' and the stream's columns")
        columns: list[exp.Expr] = []
        watermark: exp.Expr | None = None
        while True:
            if self._match_text_seq("WATERMARK", "FOR"):
                column = self._parse_id_var()
                if not self._match(TokenType.ALIAS):
                    self.raise_error("expected AS after WATERMARK FOR <column>")
                watermark = self.expression(
                    WatermarkDefinition(this=column, expression=self._parse_assignment())
                )
            else:
                column_token = self._curr
                column = self._parse_id_var()
                if column is None:
                    self.raise_error("expected a column name or WATERMARK FOR")
                kind = self._parse_types(check_func=False, allow_identifiers=False)
                if kind is None:
                    self.raise_error(
                        "expected a column type: STRING, INT, BIGINT, DOUBLE, BOOLEAN or TIMESTAMP"
                    )
                definition = self.expression(exp.ColumnDef(this=column, kind=kind))
                columns.append(definition.update_positions(column_token))
            if not self._match(TokenType.COMMA):
                break
        if not self._match(TokenType.R_PAREN):
            self.raise_error("expected ',' and another column, or ')' to end the columns")
        properties = self._parse_with_properties()
        return self.expression(
            CreateStream(
                this=name,
                expressions=columns,
                watermark=watermark,
                properties=properties,
                replace=replace,
                exists=exists,
            )
        )

    def _parse_with_properties(self) -> list[exp.Expr]:
        if not self._match(TokenType.WITH):
            return []
        if not self._match(TokenType.L_PAREN, advance=False):
            self.raise_error("expected '(' and name = value options after WITH")
        return self._parse_wrapped_csv(self._parse_assignment)

    def _parse_create_pipeline(self, replace: bool) -> exp.Expr:
        exists = self._parse_exists(not_=True)
        name = self._parse_object_name("pipeline")
        properties = self._parse_with_properties()
        if not self._match(TokenType.ALIAS):
            self.raise_error("expected AS and the pipeline's SELECT")
        query = self._parse_select()
        if query is None:
            self.raise_error("expected a SELECT after AS")
        query = self._parse_set_operations(query)
        emit = None
        if self._match_text_seq("EMIT"):
            if self._match_text_seq("CHANGES"):
                emit = "changes"
            elif self._match_text_seq("FINAL"):
                emit = "final"
            else:
                self.raise_error("expected CHANGES or FINAL after EMIT")
        return self.expression(
            CreatePipeline(
                this=name,
                expression=query,
                emit=emit and exp.var(emit),
                properties=properties,
                replace=replace,
                exists=exists,
            )
        )

    def _parse_kvdb_drop(self) -> exp.Expr:
        for kind in ("PIPELINE", "STREAM"):
            if self._match_text_seq(kind):
                exists = self._parse_exists()
                name = self._parse_object_name(kind.lower())
                return self.expression(DropObject(this=name, kind=exp.var(kind), exists=exists))
        return self._parse_drop()

    def _parse_kvdb_show(self) -> exp.Expr:
        for kind in ("PIPELINES", "STREAMS"):
            if self._match_text_seq(kind):
                return self.expression(ShowObjects(this=exp.var(kind)))
        return self._parse_as_command(self._prev)


class KvdbTokenizer(tokens.Tokenizer):
    # sqlglot reads the rest of a SHOW statement as one opaque string; we parse SHOW ourselves
    COMMANDS: ClassVar = tokens.Tokenizer.COMMANDS - {TokenType.SHOW}


class KvdbDialect(Dialect):
    Tokenizer = KvdbTokenizer
    Parser = KvdbParser
