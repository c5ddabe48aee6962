"""PostgreSQL schema migrations: ``sql/postgres/NNNN_name.sql`` applied in order.

Several nodes may start at once: the whole run holds a session advisory lock, so one node
migrates and the others wait, then find nothing left to do. Each file runs in one
transaction with its row in ``schema_migrations``.

Version N and N+1 run side by side (procrastinate's pre/post migrations): a migration whose
first line is ``-- additive`` only adds (tables, nullable columns, indexes) and older code
keeps working against it; any other migration is one older code must not run against. A node
refuses to start when the database holds a non-additive migration newer than it knows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg
import structlog

from gatewayd.store.errors import SchemaTooNew

log = structlog.get_logger(__name__)

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

# pg_advisory_lock key: "gatewayd" in ASCII, so no other application's lock collides.
MIGRATION_LOCK = 0x67617465776179
_ADDITIVE = "-- additive"


@dataclass(frozen=True)
class PgMigration:
    """One schema step."""

    version: int
    name: str
    sql: str

    @property
    def additive(self) -> bool:
        """Whether code of the previous version still runs against it."""
        return self.sql.lstrip().startswith(_ADDITIVE)


def pg_migrations() -> list[PgMigration]:
    """Every PostgreSQL migration shipped with the package, in version order."""
    found: list[PgMigration] = []
    folder = resources.files("gatewayd.store").joinpath("sql").joinpath("postgres")
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(PgMigration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    return found


async def pg_migrate(conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy) -> int:
    """Bring the schema to the newest version under the advisory lock; returns it.

    Raises ``SchemaTooNew`` when a newer gatewayd made a change this one cannot run against.
    """
    steps = pg_migrations()
    newest = steps[-1].version if steps else 0
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL, additive BOOLEAN NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())"
        )
        rows = await conn.fetch("SELECT version, name, additive FROM schema_migrations")
        applied = {int(r["version"]) for r in rows}
        blocking = sorted(
            int(r["version"]) for r in rows if r["version"] > newest and not r["additive"]
        )
        if blocking:
            raise SchemaTooNew(
                f"database schema v{blocking[-1]} is newer than this gatewayd (v{newest})"
            )
        current = max((v for v in applied if v <= newest), default=0)
        missing = [s for s in steps if s.version not in applied]
        for step in missing:
            async with conn.transaction():
                await conn.execute(step.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, additive) VALUES ($1,$2,$3)",
                    step.version,
                    step.name,
                    step.additive,
                )
            log.info("store.migrated", version=step.version, name=step.name)
            current = max(current, step.version)
        return current
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
