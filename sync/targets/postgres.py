"""``PostgresSyncTarget``: the replicated keys mirrored into a PostgreSQL table (psycopg 3).

The table (made if missing)::

    key          bytea PRIMARY KEY       -- the key's UTF-8 bytes: any key, compared byte-wise
    value        bytea                   -- NULL when deleted
    content_type text
    deleted      boolean NOT NULL        -- a tombstone: the key was deleted at this version
    hlc          numeric(20, 0) NOT NULL -- the version: hlc (a u64, beyond bigint) ...
    origin       text COLLATE "C" NOT NULL  -- ... and origin, compared byte-wise
    vector       jsonb                   -- the version vector: origin -> highest hlc seen
    value_json   jsonb                   -- with json_values: the value, if it is JSON

One transaction per batch (REPLICATION 7): read the checkpoint of this (table, target, source),
refuse a gap or a batch for another incarnation of the table, upsert every item with a version
guard, and store the new checkpoint. The guard is the merge rule without its policy: a row
takes a version that has seen it (whose vector covers the row's version: a delete that won a
``delete_wins`` conflict with a lower hlc, say), else only a greater ``(hlc, origin)`` (so
several nodes may feed one table, as ``lww`` would). A replay or an older version never moves
a row backwards. A lost reply, a dropped connection or a restart mid-batch leaves either all
of it or none, and the retry finds out which from the checkpoint.

The table's incarnation is its OID: a table dropped and made again invalidates the
checkpoints stored for the old one, and the node resends from its log (or a snapshot).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from kvdb import ApplyResult, RemoteBatch, RemoteItem

from ..errors import ResyncNeeded, TargetError, TargetMismatch, TargetRefused, TargetUnavailable
from ..protocol import Hello, Mode, Welcome
from .options import PostgresOptions, redact_url

__all__ = ["PostgresSyncTarget"]

log = logging.getLogger("sync.targets.postgres")

_REFUSED_AT_CONNECT = (
    "does not exist", "password authentication failed", "no pg_hba.conf entry",
    "permission denied", "authentication failed",
)  # fmt: skip
_TRANSIENT = (
    psycopg.OperationalError, psycopg.InterfaceError,
    pg_errors.DeadlockDetected, pg_errors.SerializationFailure,
)  # fmt: skip


class PostgresSyncTarget:
    kind = "postgres"

    def __init__(self, name: str, options: PostgresOptions, *, timeout_ms: int = 10_000) -> None:
        self.node_id = name
        self.options = options
        self.timeout = timeout_ms / 1000
        self.failovers = 0
        self.table_name = options.table_for(name)
        self._qualified = f"{options.schema}.{self.table_name}"
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._oid: int | None = None
        self._sql = _Statements(options, self.table_name)
        self._one_batch = asyncio.Lock()  # batches sent together (snapshot pages) go in turn

    @property
    def endpoint(self) -> str:
        return redact_url(self.options.dsn)

    async def handshake(self, hello: Hello) -> Welcome:
        if hello.target != self.node_id:
            raise TargetMismatch(
                f"this is PostgreSQL target {self.node_id!r}, not {hello.target!r}"
            )
        checkpoint, _ = await self._run(self._handshake, hello)
        return Welcome(self.node_id, str(self._oid), checkpoint)

    async def apply(self, batch: RemoteBatch, mode: Mode = "log") -> ApplyResult:
        async with self._one_batch:  # one connection: its transactions must not interleave
            result: ApplyResult = await self._run(self._apply, batch, mode)
        return result

    async def check_health(self) -> bool:
        try:
            await self._run(self._ping)
        except TargetError:
            return False
        return True

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    # -- one attempt ---------------------------------------------------------------------------

    async def _run(self, work: Any, *args: Any) -> Any:
        """``work(conn, *args)`` within the timeout; failures become ``TargetError``s."""
        try:
            async with asyncio.timeout(self.timeout):
                conn = await self._connect()
                return await work(conn, *args)
        except TargetError:
            raise
        except TimeoutError:
            await self._discard()
            raise TargetUnavailable(
                f"PostgreSQL {self.endpoint}: no answer within {self.timeout:g} s",
                endpoint=self.endpoint,
            ) from None
        except psycopg.Error as exc:
            raise await self._translate(exc) from None

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.options.dsn, autocommit=True, connect_timeout=max(1, int(self.timeout)),
                application_name=f"kvdb sync {self.node_id}",
            )  # fmt: skip
        except psycopg.OperationalError as exc:
            message = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
            if any(part in str(exc) for part in _REFUSED_AT_CONNECT):
                raise TargetRefused(
                    f"PostgreSQL {self.endpoint}: {message}; check the dsn's user, password "
                    "and database", endpoint=self.endpoint,
                ) from None  # fmt: skip
            raise TargetUnavailable(f"PostgreSQL {self.endpoint}: {message}",
                                    endpoint=self.endpoint) from None  # fmt: skip
        try:
            await self._set_up(conn)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return conn

    async def _set_up(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Make the schema, the table and the checkpoint table if missing (one at a time
        across nodes: an advisory lock)."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                               (f"kvdb sync {self._qualified}",))  # fmt: skip
            cursor = await conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.options.schema,)
            )
            if await cursor.fetchone() is None:
                await conn.execute(sql.SQL("CREATE SCHEMA {}").format(self._sql.schema))
            for statement in self._sql.create:
                await conn.execute(statement)
            self._oid = await self._table_oid(conn)

    async def _table_oid(self, conn: psycopg.AsyncConnection[Any]) -> int | None:
        cursor = await conn.execute("SELECT to_regclass(%s)::oid", (self._quoted_name(),))
        row = await cursor.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _quoted_name(self) -> str:
        return f'"{self.options.schema}"."{self.table_name}"'

    async def _ping(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute("SELECT 1")

    async def _checkpoint(
        self, conn: psycopg.AsyncConnection[Any], source: str, epoch: str
    ) -> tuple[int, bool]:
        """This node's checkpoint in the table as it is now, and whether it is of ``epoch``
        (a checkpoint of another incarnation of the source, or of the table, is none)."""
        cursor = await conn.execute(
            self._sql.read_checkpoint, (self._quoted_name(), self.table_name, self.node_id, source)
        )
        row = await cursor.fetchone()
        oid = None if row is None or row[0] is None else int(row[0])
        if oid is None:  # someone dropped the table: make it again on the next attempt
            await self._discard()
            raise TargetUnavailable(f"PostgreSQL table {self._qualified} is gone; recreating it")
        if oid != self._oid:
            self._oid = oid  # made again by someone else: earlier checkpoints are void
        assert row is not None
        if row[1] is None or row[3] is None or int(row[3]) != oid:
            return 0, False
        return (int(row[2]), True) if row[1] == epoch else (0, False)

    async def _handshake(
        self, conn: psycopg.AsyncConnection[Any], hello: Hello
    ) -> tuple[int, bool]:
        return await self._checkpoint(conn, hello.source, hello.source_epoch)

    async def _apply(
        self, conn: psycopg.AsyncConnection[Any], batch: RemoteBatch, mode: Mode
    ) -> ApplyResult:
        async with conn.transaction():
            checkpoint, same = await self._checkpoint(conn, batch.source, batch.source_epoch)
            if batch.target_epoch is not None and batch.target_epoch != str(self._oid):
                raise ResyncNeeded(
                    f"table {self._qualified} was made again since the handshake", reason="epoch"
                )
            if not same and mode == "log" and batch.prev_seq != 0:
                raise ResyncNeeded("the table has no checkpoint of this incarnation of "
                                   f"{batch.source}", reason="epoch")  # fmt: skip
            if mode == "log":
                if batch.last_seq <= checkpoint:
                    return ApplyResult(checkpoint, 0, len(batch.items), 0, duplicate=True)
                if batch.prev_seq > checkpoint:
                    raise ResyncNeeded(
                        f"table {self._qualified} holds {batch.source}'s log up to seq "
                        f"{checkpoint}, not {batch.prev_seq}",
                        reason="sequence_gap", checkpoint=checkpoint,
                    )  # fmt: skip
            items = [i for i in batch.items if mode != "log" or i.seq > checkpoint]
            applied = await self._upsert(conn, items)
            if mode != "snapshot":
                checkpoint = batch.last_seq
                await conn.execute(self._sql.write_checkpoint, (
                    self.table_name, self.node_id, batch.source, batch.source_epoch,
                    checkpoint, self._oid,
                ))  # fmt: skip
        return ApplyResult(checkpoint, applied, len(batch.items) - applied, 0)

    async def _upsert(self, conn: psycopg.AsyncConnection[Any], items: list[RemoteItem]) -> int:
        # One row per key and statement: the key's last item in the batch, which is in the
        # source's log order, so its newest state (whatever the version numbers say).
        newest: dict[str, RemoteItem] = {item.key: item for item in items}
        if not newest:
            return 0
        rows = sorted(newest.values(), key=lambda i: i.key.encode())  # one lock order: no deadlocks
        columns: list[Any] = [
            [i.key.encode() for i in rows],
            [None if i.deleted else (i.value or b"") for i in rows],
            [i.content_type for i in rows],
            [i.deleted for i in rows],
            [i.hlc for i in rows],
            [i.origin for i in rows],
            [orjson.dumps(dict(i.vector)).decode() for i in rows],
        ]
        if self.options.json_values:
            columns.append([None if i.deleted else _json_text(i.value) for i in rows])
        cursor = await conn.execute(self._sql.upsert, columns)
        return max(0, cursor.rowcount)

    # -- errors --------------------------------------------------------------------------------

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:
                log.debug("closing the PostgreSQL connection failed", exc_info=True)

    async def _translate(self, exc: psycopg.Error) -> TargetError:
        where = f"PostgreSQL {self.endpoint}"
        message = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        if isinstance(exc, pg_errors.UndefinedTable):
            await self._discard()
            return TargetUnavailable(f"{where}: {message}; recreating the table")
        if isinstance(exc, _TRANSIENT):
            await self._discard()
            return TargetUnavailable(f"{where}: {message}", endpoint=self.endpoint)
        if self._conn is not None and self._conn.info.transaction_status.name == "INERROR":
            await self._discard()
        return TargetRefused(f"{where}: {message}", endpoint=self.endpoint,
                             sqlstate=exc.sqlstate)  # fmt: skip


class _Statements:
    """The SQL of one target, composed once."""

    def __init__(self, options: PostgresOptions, table_name: str) -> None:
        self.schema = sql.Identifier(options.schema)
        table = sql.Identifier(options.schema, table_name)
        checkpoints = sql.Identifier(options.schema, options.checkpoint_table)
        json = options.json_values
        self.create = [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (key bytea PRIMARY KEY, value bytea, "
                "content_type text, deleted boolean NOT NULL DEFAULT false, "
                'hlc numeric(20, 0) NOT NULL, origin text COLLATE "C" NOT NULL)'
            ).format(table),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (table_name text NOT NULL, target text NOT NULL, "
                "source text NOT NULL, source_epoch text NOT NULL, seq numeric(20, 0) NOT NULL, "
                "table_oid oid NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), "
                "PRIMARY KEY (table_name, target, source))"
            ).format(checkpoints),
        ]
        self.create.append(  # a table made before the column existed gets it
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS vector jsonb").format(table)
        )
        if json:
            self.create.append(
                sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS value_json jsonb").format(table)
            )
        self.read_checkpoint = sql.SQL(
            "SELECT to_regclass(%s)::oid, c.source_epoch, c.seq, c.table_oid "
            "FROM (VALUES (1)) AS one (x) LEFT JOIN {} AS c "
            "ON c.table_name = %s AND c.target = %s AND c.source = %s"
        ).format(checkpoints)
        self.write_checkpoint = sql.SQL(
            "INSERT INTO {} AS c (table_name, target, source, source_epoch, seq, table_oid) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (table_name, target, source) DO UPDATE "
            "SET source_epoch = excluded.source_epoch, seq = excluded.seq, "
            "table_oid = excluded.table_oid, updated_at = now()"
        ).format(checkpoints)
        names = ["key", "value", "content_type", "deleted", "hlc", "origin", "vector"]
        types = ["bytea[]", "bytea[]", "text[]", "boolean[]", "numeric[]", "text[]", "text[]"]
        select = "u.key, u.value, u.content_type, u.deleted, u.hlc, u.origin, u.vector::jsonb"
        if json:
            names.append("value_json")
            types.append("text[]")
            select += ", u.value_json::jsonb"
        params = ", ".join(f"%s::{t}" for t in types)
        updates = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
        self.upsert = sql.SQL(
            "INSERT INTO {} AS cur ({}) SELECT " + select + " FROM unnest(" + params + ") "
            "AS u (" + ", ".join(names) + ") ON CONFLICT (key) DO UPDATE SET " + updates + " "
            "WHERE (cur.hlc, cur.origin) < (excluded.hlc, excluded.origin) "
            "OR ((cur.hlc, cur.origin) <> (excluded.hlc, excluded.origin) "
            "AND (excluded.vector ->> cur.origin)::numeric >= cur.hlc)"
        ).format(table, sql.SQL(", ").join(map(sql.Identifier, names)))


def _json_text(value: bytes | None) -> str | None:
    """``value`` as JSON text for the jsonb column, or None if it is not JSON that
    PostgreSQL can hold (it refuses the \\u0000 escape)."""
    if not value or b"\\u0000" in value:
        return None
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return value.decode()
