"""Persistence behind one interface (:class:`Store`): SQLite (one host) or PostgreSQL."""

from gatewayd.store.base import Store
from gatewayd.store.errors import (
    ClaimLost,
    IdempotencyKeyReused,
    RecipientOptedOut,
    SchemaTooNew,
    StoreError,
    WrongState,
)
from gatewayd.store.ids import new_id
from gatewayd.store.readers import sqlite_path
from gatewayd.store.records import (
    GONE_OUT,
    Category,
    HistoryRecord,
    InboundRecord,
    InboundStatus,
    Inserted,
    MessageRecord,
    MessageStatus,
    NewInboundPart,
    NewMessage,
    NewPart,
    NextWork,
    OptOutRecord,
    OptOutResult,
    OptOutScope,
    Page,
    PartRecord,
    PartStatus,
    Priority,
    ReportIn,
    ReportMatch,
    RouteQuery,
    WebhookDelivery,
    WebhookFailure,
    parse_cursor,
)
from gatewayd.store.sqlite import SqliteStore


async def open_store(
    database: str,
    *,
    webhook_url: str | None = None,
    node: str | None = None,
    claim_lease_seconds: float = 150.0,
    node_lease_seconds: float = 30.0,
    poll_seconds: float = 1.0,
) -> Store:
    """The opened store for ``database``, migrated; ``node`` names this node (PostgreSQL).

    ``postgresql://`` (or ``postgres://``) URLs open the PostgreSQL store (many nodes), with
    the claim and node leases and the poll period given; anything else is a SQLite path or
    ``sqlite:///path`` (one host: the lease and poll settings do not apply).
    """
    path = sqlite_path(database)
    if path is None:
        # Imported here: a SQLite-only host never loads asyncpg.
        from gatewayd.store.postgres import PostgresStore

        pg = PostgresStore(
            database,
            webhook_url=webhook_url,
            node=node,
            lease_seconds=node_lease_seconds,
            claim_lease_seconds=claim_lease_seconds,
            poll_seconds=poll_seconds,
        )
        await pg.open()
        return pg
    store = SqliteStore(path, webhook_url=webhook_url)
    await store.open()
    return store


__all__ = [
    "GONE_OUT",
    "Category",
    "ClaimLost",
    "HistoryRecord",
    "IdempotencyKeyReused",
    "InboundRecord",
    "InboundStatus",
    "Inserted",
    "MessageRecord",
    "MessageStatus",
    "NewInboundPart",
    "NewMessage",
    "NewPart",
    "NextWork",
    "OptOutRecord",
    "OptOutResult",
    "OptOutScope",
    "Page",
    "PartRecord",
    "PartStatus",
    "Priority",
    "RecipientOptedOut",
    "ReportIn",
    "ReportMatch",
    "RouteQuery",
    "SchemaTooNew",
    "SqliteStore",
    "Store",
    "StoreError",
    "WebhookDelivery",
    "WebhookFailure",
    "WrongState",
    "new_id",
    "open_store",
    "parse_cursor",
]
