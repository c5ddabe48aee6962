"""Persistence behind one interface (:class:`Store`): SQLite now, PostgreSQL later."""

from gatewayd.store.base import Store
from gatewayd.store.errors import (
    IdempotencyKeyReused,
    RecipientOptedOut,
    SchemaTooNew,
    StoreError,
    WrongState,
)
from gatewayd.store.ids import new_id
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


async def open_store(database: str, *, webhook_url: str | None = None) -> Store:
    """The opened store for ``database`` (a SQLite path or ``sqlite:///path``), migrated."""
    if database.startswith("sqlite://"):
        database = database.removeprefix("sqlite://")
    elif "://" in database:
        scheme = database.split("://", 1)[0]
        raise ValueError(f"database: unsupported scheme {scheme!r} (only SQLite is built in)")
    store = SqliteStore(database, webhook_url=webhook_url)
    await store.open()
    return store


__all__ = [
    "GONE_OUT",
    "Category",
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
