"""Conversations (the inbox): every number's outbound and inbound messages, interleaved.

The interface and its records; SQLite in ``conversations_sqlite``, PostgreSQL in
``conversations_postgres``. Both are read-only views over the core's ``messages``,
``inbound_messages`` and ``optouts``. Pages are newest first; a cursor is the last row's
``(time, key)`` with the time as the store keeps it (:mod:`gatewayd.store.timefmt`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gatewayd.store.readers import sqlite_path


@dataclass(frozen=True)
class ConversationSummary:
    """One number: its latest message either way and its opt-out scope, if any."""

    number: str
    last_at: datetime
    last_direction: str  # "in" | "out"
    last_text: str
    messages: int
    optout: str | None


@dataclass(frozen=True)
class ConversationEntry:
    """One message of a conversation."""

    id: str
    direction: str  # "in" | "out"
    text: str
    status: str
    at: datetime
    modem: str | None


class Conversations(Protocol):
    """What the inbox (``gatewayd.api.inbox``) reads."""

    async def open(self) -> None:
        """Connect (a connection or pool of its own)."""
        ...

    async def close(self) -> None:
        """Close the connections."""
        ...

    async def conversations(
        self, *, limit: int, before: tuple[str, str] | None = None
    ) -> list[ConversationSummary]:
        """Numbers by their latest message, newest first; ``before`` is ``(time, number)``."""
        ...

    async def thread(
        self, number: str, *, limit: int, before: tuple[str, str] | None = None
    ) -> list[ConversationEntry]:
        """``number``'s messages, newest first; ``before`` is the last row's ``(time, id)``."""
        ...


async def open_conversations(database: str) -> Conversations | None:
    """The opened conversations store for ``database`` (the rule of ``open_store``).

    None for an in-memory SQLite database, which no second connection can see.
    """
    path = sqlite_path(database)
    if path is None:
        # Imported here: a SQLite-only host never loads asyncpg.
        from gatewayd.store.conversations_postgres import PostgresConversations

        pg = PostgresConversations(database)
        await pg.open()
        return pg
    if path == ":memory:":
        return None
    # Imported here: conversations_sqlite imports this module's records.
    from gatewayd.store.conversations_sqlite import SqliteConversations

    lite = SqliteConversations(path)
    await lite.open()
    return lite
