"""Conversations (PostgreSQL): every number's outbound and inbound messages, interleaved.

The same views as :mod:`gatewayd.store.conversations_sqlite` over the tables every node
shares (the schema belongs to :mod:`gatewayd.store.postgres`), so any node's inbox shows
every node's messages. Times are the stored fixed-width UTC text, compared as text like
the core store does; a cursor with an empty key bounds the time only, as on SQLite. Reads
on a small pool of its own.
"""

from __future__ import annotations

import asyncpg

from gatewayd.store.conversations_base import ConversationEntry, ConversationSummary
from gatewayd.store.readers import open_pool
from gatewayd.store.timefmt import from_db

# Concurrent inbox requests each take a connection (one asyncpg connection runs one query).
POOL_SIZE = 4

_CONVERSATIONS = """
WITH every AS (
    SELECT recipient AS number, created_at AS at, id, 'out' AS dir, text FROM messages
    UNION ALL
    SELECT sender, first_received_at, id, 'in', text FROM inbound_messages
    WHERE status <> 'partial'
),
ranked AS (
    SELECT number, at, dir, text, COUNT(*) OVER (PARTITION BY number) AS messages,
        ROW_NUMBER() OVER (PARTITION BY number ORDER BY at DESC, id DESC) AS place
    FROM every
)
SELECT r.number, r.at AS last_at, r.dir, r.text, r.messages, o.scope
FROM ranked r LEFT JOIN optouts o ON o.number = r.number
WHERE r.place = 1
  AND ($1::text IS NULL OR r.at < $1 OR (r.at = $1 AND ($2 = '' OR r.number < $2)))
ORDER BY r.at DESC, r.number DESC LIMIT $3
"""

_THREAD = """
SELECT * FROM (
    SELECT id, 'out' AS dir, text, status, created_at AS at, modem FROM messages
    WHERE recipient = $1
    UNION ALL
    SELECT id, 'in', text, status, first_received_at, modem FROM inbound_messages
    WHERE sender = $1 AND status <> 'partial'
) t
WHERE $2::text IS NULL OR at < $2 OR (at = $2 AND ($3 = '' OR id < $3))
ORDER BY at DESC, id DESC LIMIT $4
"""


class PostgresConversations:
    """Reads conversations from the gateway's PostgreSQL database (all nodes' messages)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        """Open the pool."""
        self._pool = await open_pool(self._dsn, name="gatewayd-inbox", max_size=POOL_SIZE)

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def _p(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("conversations store is not open")
        return self._pool

    async def conversations(
        self, *, limit: int, before: tuple[str, str] | None = None
    ) -> list[ConversationSummary]:
        """Numbers by their latest message, newest first; ``before`` is ``(time, number)``."""
        at, number = before if before is not None else (None, "")
        rows = await self._p.fetch(_CONVERSATIONS, at, number, limit)
        return [
            ConversationSummary(
                number=r["number"],
                last_at=from_db(r["last_at"]),
                last_direction=r["dir"],
                last_text=r["text"],
                messages=int(r["messages"]),
                optout=r["scope"],
            )
            for r in rows
        ]

    async def thread(
        self, number: str, *, limit: int, before: tuple[str, str] | None = None
    ) -> list[ConversationEntry]:
        """``number``'s messages, newest first; ``before`` is the last row's ``(time, id)``."""
        at, ident = before if before is not None else (None, "")
        rows = await self._p.fetch(_THREAD, number, at, ident, limit)
        return [
            ConversationEntry(
                r["id"], r["dir"], r["text"], r["status"], from_db(r["at"]), r["modem"]
            )
            for r in rows
        ]
