"""The flow store for a ``database`` setting: SQLite (one host) or PostgreSQL (many nodes)."""

from __future__ import annotations

from gatewayd.store.flows_base import FlowStore
from gatewayd.store.flows_sqlite import SqliteFlowStore
from gatewayd.store.readers import sqlite_path


async def open_flow_store(database: str, *, node: str | None = None) -> FlowStore:
    """The opened flow store on the gateway's ``database``, chosen as ``open_store`` chooses.

    ``postgresql://`` (or ``postgres://``) opens the PostgreSQL flow store, its sessions
    named after ``node`` (the gateway store's node name); anything else is the SQLite file
    (or ``sqlite:///path``) the gateway's store opened and migrated before.
    """
    path = sqlite_path(database)
    if path is None:
        # Imported here: a SQLite-only host never loads asyncpg.
        from gatewayd.store.flows_postgres import PostgresFlowStore

        pg = PostgresFlowStore(database, node=node)
        await pg.open()
        return pg
    store = SqliteFlowStore(path)
    await store.open()
    return store
