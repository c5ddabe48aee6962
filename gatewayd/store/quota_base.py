"""SMS parts a SIM sent since a moment, for monthly quotas (:mod:`gatewayd.fleet.quota`).

The interface; SQLite in ``quota_sqlite``, PostgreSQL in ``quota_postgres``. Both count the
core's ``parts`` by ICCID: on PostgreSQL the table is shared by every node, so a SIM moved
to another node keeps its month's count.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from gatewayd.store.quota_sqlite import SqliteSentCounts
from gatewayd.store.readers import sqlite_path


class SentCounts(Protocol):
    """Counts of parts handed to the network per SIM (every part that got a ``sent_at``)."""

    async def open(self) -> None:
        """Connect (a connection or pool of its own)."""
        ...

    async def close(self) -> None:
        """Close the connections."""
        ...

    async def sent_since(self, identity: str, since: datetime) -> int:
        """Parts SIM ``identity`` (its ICCID) sent at or after ``since``."""
        ...


async def open_sent_counts(database: str) -> SentCounts | None:
    """The opened sent-counts store for ``database`` (the rule of ``open_store``).

    None for an in-memory SQLite database, which no second connection can see.
    """
    path = sqlite_path(database)
    if path is None:
        # Imported here: a SQLite-only host never loads asyncpg.
        from gatewayd.store.quota_postgres import PostgresSentCounts

        pg = PostgresSentCounts(database)
        await pg.open()
        return pg
    if path == ":memory:":
        return None
    lite = SqliteSentCounts(path)
    await lite.open()
    return lite
