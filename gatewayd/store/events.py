"""Webhook payloads, built from stored rows inside the transaction that changes them.

Every event is ``{"event": type, "id": uuid, "created_at": iso, "data": {...}}``; the
outbox keeps one row per target URL (the configured one and a message's ``callback_url``).
An event about a message also carries ``"sequence"``: 1, 2, ... per message, counted in the
transaction that writes the event, so a receiver can order events that arrive out of order.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gatewayd.store.records import InboundRecord, InboundStatus, MessageRecord, OptOutRecord
from gatewayd.store.timefmt import opt_to_db, to_db

# A claimed webhook row is retried after this long if its attempt never reports back
# (the daemon died mid-POST): at-least-once delivery.
WEBHOOK_LEASE_SECONDS = 300.0


@dataclass(frozen=True)
class OutboxRow:
    """One outbox row to insert."""

    id: str
    url: str
    event: str
    payload: str


def build(
    event: str,
    data: dict[str, Any],
    urls: list[str],
    now: datetime,
    sequence: int | None = None,
) -> list[OutboxRow]:
    """The outbox rows for ``event`` to each distinct URL (none when no URL is configured)."""
    event_id = str(uuid.uuid4())
    head: dict[str, Any] = {"event": event, "id": event_id, "created_at": to_db(now)}
    if sequence is not None:
        head["sequence"] = sequence
    body = json.dumps(
        {**head, "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    seen: list[str] = []
    for url in urls:
        if url and url not in seen:
            seen.append(url)
    # One delivery id per target: the receiver de-duplicates by the event id in the body.
    return [OutboxRow(f"{event_id}-{n}", url, event, body) for n, url in enumerate(seen)]


def message_data(msg: MessageRecord) -> dict[str, Any]:
    """A message as webhook ``data``."""
    return {
        "id": msg.id,
        "to": msg.recipient,
        "status": msg.status.value,
        "category": msg.category.value,
        "segments": msg.segments,
        "metadata": msg.metadata,
        "error_code": msg.error_code,
        "error_text": msg.error_text,
        "parts": [
            {
                "seq": p.seq,
                "status": p.status.value,
                "mr": p.mr,
                "sent_at": opt_to_db(p.sent_at),
                "delivered_at": opt_to_db(p.delivered_at),
            }
            for p in msg.parts
        ],
    }


def optout_data(rec: OptOutRecord) -> dict[str, Any]:
    """An opt-out entry as webhook ``data``."""
    return {
        "number": rec.number,
        "scope": rec.scope.value,
        "source": rec.source,
        "created_at": to_db(rec.created_at),
    }


def inbound_data(rec: InboundRecord) -> dict[str, Any]:
    """An inbound message as webhook ``data``."""
    return {
        "id": rec.id,
        "from": rec.sender,
        "modem": rec.modem,
        "text": rec.text,
        "incomplete": rec.status is InboundStatus.INCOMPLETE,
        "parts_received": rec.parts_received,
        "parts_total": rec.parts_total,
        "received_at": to_db(rec.completed_at or rec.first_received_at),
    }
