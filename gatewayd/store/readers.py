"""What the stores beside the core share (the flows, the inbox's conversations, the monthly
quota's sent counts): which database a ``database`` string names, and their asyncpg pool.

They use the core's database on connections of their own, so a slow inbox page never holds
a connection the senders need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg


def sqlite_path(database: str) -> str | None:
    """The SQLite file ``database`` names, or None when it is a PostgreSQL URL.

    The one rule every opener follows (the core store, flows, inbox, quota, the outcome
    journal's place); raises ``ValueError`` for any other scheme.
    """
    if database.startswith(("postgresql://", "postgres://")):
        return None
    if database.startswith("sqlite://"):
        return database.removeprefix("sqlite://")
    if "://" in database:
        scheme = database.split("://", 1)[0]
        raise ValueError(
            f"database: unsupported scheme {scheme!r} (expected sqlite:// or postgresql://)"
        )
    return database


async def open_pool(dsn: str, *, name: str, max_size: int) -> asyncpg.Pool:
    """A pool whose sessions carry ``name`` as ``application_name``, with no statement
    waiting for ever on a lost server or a lock held by a stalled node.

    A node refuses to start while sessions named ``gatewayd/<node>`` exist (another process
    under its name): only the core store's own sessions may carry exactly that name.
    """
    # Imported here: a SQLite-only host never loads asyncpg.
    import asyncpg

    from gatewayd.store.postgres import COMMAND_TIMEOUT_SECONDS

    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        server_settings={"application_name": name},
        command_timeout=COMMAND_TIMEOUT_SECONDS,
        timeout=COMMAND_TIMEOUT_SECONDS,
    )
