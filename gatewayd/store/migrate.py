"""Versioned schema migrations: ``sql/NNNN_name.sql`` files applied in order at start.

The applied version is SQLite's ``PRAGMA user_version``; each file runs in one transaction
together with the version bump, so a crash mid-migration leaves the previous version intact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import aiosqlite
import structlog

from gatewayd.store.errors import SchemaTooNew

log = structlog.get_logger(__name__)

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    """One schema step."""

    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found: list[Migration] = []
    for entry in resources.files("gatewayd.store").joinpath("sql").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    return found


async def migrate(db: aiosqlite.Connection) -> int:
    """Bring the schema of ``db`` (autocommit mode) to the newest version; returns it."""
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    current = int(row[0]) if row else 0
    steps = migrations()
    newest = steps[-1].version if steps else 0
    if current > newest:
        raise SchemaTooNew(f"database schema v{current} is newer than this gatewayd (v{newest})")
    for step in steps:
        if step.version <= current:
            continue
        # executescript commits first and runs the text as is: the script carries its own
        # BEGIN/COMMIT so the schema change and the version bump are one transaction.
        try:
            await db.executescript(
                f"BEGIN IMMEDIATE;\n{step.sql}\nPRAGMA user_version = {step.version};\nCOMMIT;"
            )
        except Exception:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise
        log.info("store.migrated", version=step.version, name=step.name)
        current = step.version
    return current
