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

from gatewayd.store.timefmt import to_db


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
