"""SMS parts a SIM sent since a moment (SQLite), for monthly quotas (gatewayd.fleet.quota).

A read on a connection of its own; the schema belongs to :mod:`gatewayd.store.sqlite`.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

import aiosqlite

from gatewayd.store.timefmt import to_db


class SqliteSentCounts:
    """Counts of parts handed to the network per SIM (every part that got a ``sent_at``)."""

    def __init__(self, path: str) -> None:
        self._path = path.removeprefix("sqlite://")
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        """Open the connection."""
        db = await aiosqlite.connect(self._path, isolation_level=None)
        db.row_factory = sqlite3.Row
        await db.execute("PRAGMA busy_timeout=5000")
        self._db = db

    async def close(self) -> None:
        """Close the connection."""
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def sent_since(self, identity: str, since: datetime) -> int:
        """Parts SIM ``identity`` sent at or after ``since``."""
        if self._db is None:
            raise RuntimeError("sent counts store is not open")
        rows = list(
            await self._db.execute_fetchall(
                "SELECT COUNT(*) AS n FROM parts WHERE identity = ? AND sent_at >= ?",
                (identity, to_db(since)),
            )
        )
        return int(rows[0]["n"]) if rows else 0
