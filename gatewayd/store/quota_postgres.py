"""SMS parts a SIM sent since a moment (PostgreSQL), for monthly quotas (gatewayd.fleet.quota).

Reads on a small pool of its own; the schema belongs to :mod:`gatewayd.store.postgres`.
``parts`` is shared by every node and keyed by ICCID, so the count is the SIM's across
nodes (``sql/postgres/0005_inbox_quota.sql`` indexes it).
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from gatewayd.store.readers import open_pool
from gatewayd.store.timefmt import to_db


class PostgresSentCounts:
    """Counts of parts handed to the network per SIM (every part that got a ``sent_at``)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        """Open the pool (the quota monitor reads one SIM at a time: two connections)."""
        self._pool = await open_pool(self._dsn, name="gatewayd-quota", max_size=2)

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def sent_since(self, identity: str, since: datetime) -> int:
        """Parts SIM ``identity`` sent at or after ``since``, on any node."""
        if self._pool is None:
            raise RuntimeError("sent counts store is not open")
        n = await self._pool.fetchval(
            "SELECT COUNT(*) FROM parts WHERE identity = $1 AND sent_at >= $2",
            identity,
            to_db(since),
        )
        return int(n)
