"""Database rows as the store's records: one set of converters for SQLite and PostgreSQL.

Both stores keep the same columns with the same meaning (times as UTC text), so an
``sqlite3.Row`` and an ``asyncpg.Record`` convert alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Protocol

from gatewayd.store.records import (
    Category,
    HistoryRecord,
    InboundRecord,
    InboundStatus,
    MessageRecord,
    MessageStatus,
    OptOutRecord,
    OptOutScope,
    PartRecord,
    PartStatus,
    Priority,
    WebhookDelivery,
    WebhookFailure,
)
from gatewayd.store.timefmt import from_db, opt_from_db


class Row(Protocol):
    """What the converters read from a row (``sqlite3.Row`` or ``asyncpg.Record``)."""

    def __getitem__(self, key: str, /) -> Any: ...


def message(
    row: Row, parts: Iterable[PartRecord], history: tuple[HistoryRecord, ...] = ()
) -> MessageRecord:
    """A ``messages`` row with its parts and history."""
    return MessageRecord(
        seq=row["seq"],
        id=row["id"],
        recipient=row["recipient"],
        text=row["text"],
        category=Category(row["category"]),
        priority=Priority.from_rank(row["priority"]),
        status=MessageStatus(row["status"]),
        encoding=row["encoding"],
        segments=row["segments"],
        replaced_chars=tuple((a, b) for a, b in json.loads(row["replaced_chars"])),
        send_at=from_db(row["send_at"]),
        expires_at=opt_from_db(row["expires_at"]),
        modem=row["modem"],
        pool=row["pool"],
        metadata=None if row["metadata"] is None else json.loads(row["metadata"]),
        callback_url=row["callback_url"],
        force_ucs2=bool(row["force_ucs2"]),
        smart=bool(row["smart"]),
        optout_exempt=bool(row["optout_exempt"]),
        created_at=from_db(row["created_at"]),
        updated_at=from_db(row["updated_at"]),
        next_attempt_at=from_db(row["next_attempt_at"]),
        attempts=row["attempts"],
        identity=row["identity"],
        bound_until=opt_from_db(row["bound_until"]),
        error_code=row["error_code"],
        error_text=row["error_text"],
        stray_part_possible=bool(row["stray_part_possible"]),
        parts=tuple(parts),
        history=history,
    )


def part(row: Row) -> PartRecord:
    """A ``parts`` row."""
    return PartRecord(
        seq=row["seq"],
        pdu=row["pdu"],
        tpdu_length=row["tpdu_length"],
        status=PartStatus(row["status"]),
        identity=row["identity"],
        mr=row["mr"],
        attempts=row["attempts"],
        error_code=row["error_code"],
        error_text=row["error_text"],
        sent_at=opt_from_db(row["sent_at"]),
        delivered_at=opt_from_db(row["delivered_at"]),
        report_status=row["report_status"],
    )


def history(row: Row) -> HistoryRecord:
    """A ``history`` row."""
    return HistoryRecord(from_db(row["at"]), row["status"], row["part_seq"], row["detail"])


def optout(row: Row) -> OptOutRecord:
    """An ``optouts`` row."""
    return OptOutRecord(
        seq=row["seq"],
        number=row["number"],
        scope=OptOutScope(row["scope"]),
        source=row["source"],
        created_at=from_db(row["created_at"]),
    )


def inbound(row: Row) -> InboundRecord:
    """An ``inbound_messages`` row with its part count as ``n``."""
    return InboundRecord(
        seq=row["seq"],
        id=row["id"],
        identity=row["identity"],
        modem=row["modem"],
        sender=row["sender"],
        text=row["text"],
        status=InboundStatus(row["status"]),
        parts_received=row["n"],
        parts_total=row["concat_total"],
        first_received_at=from_db(row["first_received_at"]),
        completed_at=opt_from_db(row["completed_at"]),
        processed=bool(row["processed"]),
    )


def delivery(row: Row) -> WebhookDelivery:
    """An outbox row as the webhook worker posts it."""
    return WebhookDelivery(row["id"], row["url"], row["event"], row["payload"], row["attempts"])


def failure(row: Row) -> WebhookFailure:
    """An outbox row that gave up."""
    return WebhookFailure(
        row["seq"],
        row["id"],
        row["url"],
        row["event"],
        row["payload"],
        row["attempts"],
        row["last_error"],
        from_db(row["created_at"]),
    )
