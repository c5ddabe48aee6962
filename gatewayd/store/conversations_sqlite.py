"""Conversations (SQLite): every number's outbound and inbound messages, interleaved.

Read-only views over ``messages``, ``inbound_messages`` and ``optouts`` on a connection of
its own (the schema belongs to :mod:`gatewayd.store.sqlite`); the interface and records are
in :mod:`gatewayd.store.conversations_base`. Pages are newest first; a cursor is the last
row's ``(time, id)``.
"""

from __future__ import annotations

import sqlite3

import aiosqlite

from gatewayd.store.conversations_base import ConversationEntry, ConversationSummary
from gatewayd.store.timefmt import from_db

_ALL = """
    SELECT recipient AS number, created_at AS at, id, 'out' AS dir, text FROM messages
    UNION ALL
    SELECT sender, first_received_at, id, 'in', text FROM inbound_messages
    WHERE status != 'partial'
"""


class SqliteConversations:
    """Reads conversations from the gateway's SQLite file."""

    def __init__(self, path: str) -> None:
        self._path = path.removeprefix("sqlite://")
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        """Open a connection of its own (WAL lets it read beside the writer)."""
        db = await aiosqlite.connect(self._path, isolation_level=None)
        db.row_factory = sqlite3.Row
        await db.execute("PRAGMA busy_timeout=5000")
        self._db = db

    async def close(self) -> None:
        """Close the connection."""
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _all(self, sql: str, params: tuple[object, ...]) -> list[sqlite3.Row]:
        if self._db is None:
            raise RuntimeError("conversations store is not open")
        return list(await self._db.execute_fetchall(sql, params))

    async def conversations(
        self, *, limit: int, before: tuple[str, str] | None = None
    ) -> list[ConversationSummary]:
        """Numbers by their latest message, newest first; ``before`` is ``(time, number)``."""
        at, number = before if before is not None else ("9999", "")
        rows = await self._all(
            f"""
            WITH every AS ({_ALL}),
            latest AS (
                SELECT number, MAX(at) AS last_at, COUNT(*) AS messages FROM every
                GROUP BY number
            )
            SELECT l.number, l.last_at, l.messages, o.scope,
                (SELECT e.dir || ':' || e.text FROM every e
                 WHERE e.number = l.number ORDER BY e.at DESC, e.id DESC LIMIT 1) AS last
            FROM latest l LEFT JOIN optouts o ON o.number = l.number
            WHERE l.last_at < ? OR (l.last_at = ? AND l.number < ?)
            ORDER BY l.last_at DESC, l.number DESC LIMIT ?
            """,
            (at, at, number or "\uffff", limit),
        )
        out = []
        for r in rows:
            direction, _, text = str(r["last"]).partition(":")
            out.append(
                ConversationSummary(
                    number=r["number"],
                    last_at=from_db(r["last_at"]),
                    last_direction=direction,
                    last_text=text,
                    messages=r["messages"],
                    optout=r["scope"],
                )
            )
        return out

    async def thread(
        self, number: str, *, limit: int, before: tuple[str, str] | None = None
    ) -> list[ConversationEntry]:
        """``number``'s messages, newest first; ``before`` is the last row's ``(time, id)``."""
        at, ident = before if before is not None else ("9999", "")
        rows = await self._all(
            """
            SELECT * FROM (
                SELECT id, 'out' AS dir, text, status, created_at AS at, modem FROM messages
                WHERE recipient = ?
                UNION ALL
                SELECT id, 'in', text, status, first_received_at, modem FROM inbound_messages
                WHERE sender = ? AND status != 'partial'
            )
            WHERE at < ? OR (at = ? AND id < ?)
            ORDER BY at DESC, id DESC LIMIT ?
            """,
            (number, number, at, at, ident or "\uffff", limit),
        )
        return [
            ConversationEntry(
                r["id"], r["dir"], r["text"], r["status"], from_db(r["at"]), r["modem"]
            )
            for r in rows
        ]
