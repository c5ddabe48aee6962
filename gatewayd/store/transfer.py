"""Export a store to JSON lines and import it into another (one host: SQLite -> PostgreSQL).

The file is one header line, ``{"format": "gatewayd-store", "version": 1}``, then one line
per row, ``{"table": name, "row": {column: value}}``, tables in an order that satisfies
their foreign keys. Both stores keep the same columns with the same values (times as UTC
text, flags as integers), so rows move verbatim; row numbers (``seq``) are kept, so ids,
cursors and histories read the same after the move. Columns only one store has (the
PostgreSQL claim columns, SQLite's rowids) are left out; the importing store fills them.
The flows' tables move too (events, customers, enrolments, sends, links, the timeline, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TextIO

import aiosqlite
import asyncpg
import structlog

from gatewayd.config import ConfigError, load_config
from gatewayd.store.errors import StoreError
from gatewayd.store.migrate import migrate
from gatewayd.store.postgres_migrate import pg_migrate

FORMAT = "gatewayd-store"
VERSION = 1

# Parents before children (foreign keys); the order rows are written and read back.
TABLES: tuple[str, ...] = (
    "messages",
    "parts",
    "history",
    "idempotency_keys",
    "optouts",
    "inbound_messages",
    "inbound_parts",
    "webhook_outbox",
    "unmatched_reports",
    "send_log",
    "sticky_recipients",
    "flow_events",
    "flow_customers",
    "flow_orders",
    "flow_enrolments",
    "flow_sends",
    "flow_links",
    "flow_clicks",
    "customer_preferences",
    "customer_timeline",
    "survey_answers",
    "customer_secrets",
)
# Only one store has these: the claim of a node (PostgreSQL) and surrogate keys (an
# enrolment's ``seq`` is SQLite's rowid: rows are written and read back in its order).
_CLAIM = frozenset({"claim_node", "claim_epoch", "lease_until"})
_SKIPPED = {
    "messages": _CLAIM,
    "send_log": frozenset({"id"}),
    "flow_events": _CLAIM,
    "flow_enrolments": _CLAIM | {"seq"},
}
_BATCH = 500


class TransferError(StoreError):
    """The export file or the target database cannot take part in a transfer."""


@dataclass(frozen=True)
class Counts:
    """Rows moved per table."""

    rows: dict[str, int]

    def total(self) -> int:
        """Rows moved in all."""
        return sum(self.rows.values())


class _Db(Protocol):
    async def columns(self, table: str) -> list[str]: ...

    def rows(self, table: str, columns: Sequence[str]) -> AsyncIterator[dict[str, Any]]: ...

    async def count(self, table: str) -> int: ...

    async def insert(self, table: str, columns: Sequence[str], rows: list[list[Any]]) -> None: ...

    async def finish(self) -> None: ...


class _Sqlite:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def columns(self, table: str) -> list[str]:
        rows = await self.db.execute_fetchall(f"PRAGMA table_info({table})")
        return [str(r[1]) for r in rows]

    async def rows(self, table: str, columns: Sequence[str]) -> AsyncIterator[dict[str, Any]]:
        async with self.db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid") as c:
            async for row in c:
                yield dict(zip(columns, row, strict=True))

    async def count(self, table: str) -> int:
        rows = list(await self.db.execute_fetchall(f"SELECT COUNT(*) FROM {table}"))
        return int(rows[0][0])

    async def insert(self, table: str, columns: Sequence[str], rows: list[list[Any]]) -> None:
        marks = ",".join("?" for _ in columns)
        await self.db.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
        )

    async def finish(self) -> None:
        return None


class _Postgres:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def columns(self, table: str) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1"
            " AND table_schema = current_schema() ORDER BY ordinal_position",
            table,
        )
        return [str(r["column_name"]) for r in rows]

    async def rows(self, table: str, columns: Sequence[str]) -> AsyncIterator[dict[str, Any]]:
        order = "seq" if "seq" in await self.columns(table) and table != "parts" else "1"
        async with self.conn.transaction():
            async for row in self.conn.cursor(
                f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}"
            ):
                yield dict(row.items())

    async def count(self, table: str) -> int:
        return int(await self.conn.fetchval(f"SELECT COUNT(*) FROM {table}"))

    async def insert(self, table: str, columns: Sequence[str], rows: list[list[Any]]) -> None:
        marks = ",".join(f"${n}" for n in range(1, len(columns) + 1))
        await self.conn.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
        )

    async def finish(self) -> None:
        # Serial columns continue after the imported rows; the queue depth counter is
        # recounted once here (the store keeps it by deltas from now on).
        for table in TABLES:
            if "seq" in await self.columns(table) and table != "parts":
                await self.conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'seq'),"
                    f" COALESCE((SELECT MAX(seq) FROM {table}), 0) + 1, false)"
                )
        await self.conn.execute(
            "UPDATE queue_depth SET value = CASE WHEN stripe = 0 THEN (SELECT COUNT(*)"
            " FROM messages WHERE status IN ('queued','sending')) ELSE 0 END"
        )


def _is_postgres(database: str) -> bool:
    return database.startswith(("postgresql://", "postgres://"))


@asynccontextmanager
async def _open(database: str, *, snapshot: bool = False) -> AsyncIterator[_Db]:
    """A migrated raw connection to ``database``; writes commit when the block ends.

    ``snapshot``: read only, every table as of one moment (an export of a live database).
    """
    if _is_postgres(database):
        conn = await asyncpg.connect(database)
        try:
            await pg_migrate(conn)
            tx = (
                conn.transaction(isolation="repeatable_read", readonly=True)
                if snapshot
                else conn.transaction()
            )
            async with tx:
                yield _Postgres(conn)
        finally:
            await conn.close()
        return
    path = database.removeprefix("sqlite://")
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        await db.execute("PRAGMA foreign_keys=ON")
        await migrate(db)
        # WAL: a deferred transaction reads one snapshot and lets the daemon write meanwhile.
        await db.execute("BEGIN" if snapshot else "BEGIN IMMEDIATE")
        try:
            yield _Sqlite(db)
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        await db.execute("COMMIT")
    finally:
        await db.close()


async def export_store(database: str, out: IO[str]) -> Counts:
    """Write every row of ``database``'s gateway tables to ``out`` as JSON lines."""
    counts: dict[str, int] = {}
    out.write(json.dumps({"format": FORMAT, "version": VERSION}) + "\n")
    async with _open(database, snapshot=True) as db:
        for table in TABLES:
            skip = _SKIPPED.get(table, frozenset())
            columns = [c for c in await db.columns(table) if c not in skip]
            n = 0
            async for row in db.rows(table, columns):
                out.write(json.dumps({"table": table, "row": row}, ensure_ascii=False) + "\n")
                n += 1
            counts[table] = n
    return Counts(counts)


async def import_store(database: str, source: IO[str]) -> Counts:
    """Load an export into ``database`` (migrated, and empty: ``TransferError`` otherwise).

    All in one transaction: a bad line leaves the target as it was.
    """
    header = _parse(source.readline(), 1)
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise TransferError(f"line 1: not a {FORMAT} v{VERSION} export")
    counts = dict.fromkeys(TABLES, 0)
    async with _open(database) as db:
        for table in TABLES:
            if await db.count(table):
                raise TransferError(f"{database}: table {table} is not empty")
        known = {t: set(await db.columns(t)) for t in TABLES}
        pending: list[list[Any]] = []
        current: tuple[str, tuple[str, ...]] | None = None
        for lineno, line in enumerate(source, 2):
            if not line.strip():
                continue
            item = _parse(line, lineno)
            name, row = item.get("table"), item.get("row")
            if not isinstance(name, str) or name not in known or not isinstance(row, dict):
                raise TransferError(f"line {lineno}: expected a row of a gateway table")
            columns = tuple(c for c in row if c in known[name])
            if current != (name, columns) or len(pending) >= _BATCH:
                if current is not None and pending:
                    await _flush(db, current, pending)
                current, pending = (name, columns), []
            pending.append([row[c] for c in columns])
            counts[name] += 1
        if current is not None and pending:
            await _flush(db, current, pending)
        await db.finish()
    return Counts(counts)


async def _flush(db: _Db, target: tuple[str, tuple[str, ...]], rows: list[list[Any]]) -> None:
    try:
        await db.insert(target[0], target[1], rows)
    except (asyncpg.PostgresError, sqlite3.Error, TypeError, ValueError) as exc:
        raise TransferError(f"table {target[0]}: {exc}") from exc


async def migrate_database(database: str) -> int:
    """Migrate ``database`` to this gatewayd's schema (PostgreSQL: one node at a time)."""
    async with _open(database):
        pass
    if _is_postgres(database):
        conn = await asyncpg.connect(database)
        try:
            return int(await conn.fetchval("SELECT MAX(version) FROM schema_migrations"))
        finally:
            await conn.close()
    async with aiosqlite.connect(database.removeprefix("sqlite://")) as db:
        rows = list(await db.execute_fetchall("PRAGMA user_version"))
    return int(rows[0][0])


# -- command line: gatewayd migrate, gatewayd store export|import ------------------------


def add_commands(sub: Any) -> None:
    """Add ``migrate`` and ``store export|import`` to the ``gatewayd`` sub-parsers."""
    mig = sub.add_parser("migrate", help="bring the database schema up to date, then exit")
    _target(mig)
    store = sub.add_parser("store", help="move a store: export to / import from JSON lines")
    verbs = store.add_subparsers(dest="store_command", metavar="VERB", required=True)
    exp = verbs.add_parser("export", help="write every gateway row as JSON lines")
    _target(exp)
    exp.add_argument("--output", type=Path, metavar="FILE", help="default: standard output")
    imp = verbs.add_parser("import", help="load an export into an empty database")
    _target(imp)
    imp.add_argument("--input", type=Path, metavar="FILE", help="default: standard input")


def _target(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", type=Path, metavar="FILE", help="the database of a config")
    which.add_argument("--database", metavar="URL", help="a SQLite path or postgresql:// URL")


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``migrate`` or ``store export|import``; 0 done, 1 refused (reason on ``err``)."""
    try:
        with _logs_to(err):
            counts = _run(args, out)
    except (ConfigError, StoreError, OSError, asyncpg.PostgresError, sqlite3.Error) as exc:
        print(f"gatewayd: {exc}", file=err)
        return 1
    if counts is not None:
        print(f"{args.store_command}: {counts.total()} rows", file=err)
    return 0


@contextmanager
def _logs_to(stream: TextIO) -> Iterator[None]:
    """Log to ``stream`` meanwhile: standard output may be the export itself."""
    before = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(stream))
    try:
        yield
    finally:
        structlog.configure(**before)


def _run(args: argparse.Namespace, out: TextIO) -> Counts | None:
    database = args.database or load_config(args.config).database
    if args.command == "migrate":
        print(f"schema v{asyncio.run(migrate_database(database))}", file=out)
        return None
    if args.store_command == "export":
        if args.output is None:
            return asyncio.run(export_store(database, out))
        with args.output.open("w", encoding="utf-8") as fh:
            return asyncio.run(export_store(database, fh))
    if args.input is None:
        return asyncio.run(import_store(database, sys.stdin))
    with args.input.open(encoding="utf-8") as fh:
        return asyncio.run(import_store(database, fh))


def _parse(line: str, lineno: int) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TransferError(f"line {lineno}: not JSON ({exc.msg})") from exc
    if not isinstance(value, dict):
        raise TransferError(f"line {lineno}: expected an object")
    return value
