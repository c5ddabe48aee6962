"""Flows rows as records: one set of converters for the SQLite and PostgreSQL flow stores.

Both keep the same columns with the same meaning (times as UTC text, flags as integers,
totals as decimal text), so an ``sqlite3.Row`` and an ``asyncpg.Record`` convert alike.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from gatewayd.store.flows_base import (
    CustomerRecord,
    EnrolmentRecord,
    EnrolmentStatus,
    NewEvent,
    NewSend,
    OrderRecord,
    StepCounts,
    TimelineEntry,
)
from gatewayd.store.rows import Row
from gatewayd.store.timefmt import from_db, opt_from_db

# The per-step counts of ``step_counts`` rows, each an integer column of the same name.
COUNTED = (
    "sent",
    "skipped",
    "delivered",
    "failed",
    "clicked",
    "replied",
    "opted_out",
    "converted",
    "answered",
)


def event(row: Row) -> NewEvent:
    """A ``flow_events`` row."""
    return NewEvent(
        event_id=row["event_id"],
        type=row["type"],
        customer_id=row["customer_id"],
        order_id=row["order_id"],
        occurred_at=from_db(row["occurred_at"]),
        received_at=from_db(row["received_at"]),
        payload=row["payload"],
    )


def event_data(payload: str | None) -> dict[str, Any]:
    """The ``data`` object of an event's stored payload (empty when none)."""
    body = json.loads(payload) if payload is not None else {}
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else {}


def send(row: Row) -> NewSend:
    """A ``flow_sends`` row."""
    return NewSend(
        row["enrolment_id"],
        row["flow"],
        row["step"],
        row["customer_id"],
        row["phone"],
        row["category"],
        row["outcome"],
        row["message_id"],
        from_db(row["at"]),
        from_db(row["send_at"]),
        row["variant"],
    )


def customer(row: Row) -> CustomerRecord:
    """A ``flow_customers`` row."""
    return CustomerRecord(
        id=row["id"],
        phone=row["phone"],
        name=row["name"],
        locale=row["locale"],
        timezone=row["timezone"],
        country=row["country"],
        consent_transactional=bool(row["consent_transactional"]),
        consent_marketing=bool(row["consent_marketing"]),
        consent_source=row["consent_source"],
        consent_at=opt_from_db(row["consent_at"]),
    )


def order(row: Row) -> OrderRecord:
    """A ``flow_orders`` row (its payload is the order's JSON object)."""
    data = json.loads(row["payload"])
    return OrderRecord(
        id=row["id"],
        customer_id=row["customer_id"],
        placed_at=from_db(row["placed_at"]),
        status=row["status"],
        total=Decimal(row["total"]),
        currency=row["currency"],
        data=data if isinstance(data, dict) else {},
    )


def enrolment(row: Row) -> EnrolmentRecord:
    """A ``flow_enrolments`` row."""
    return EnrolmentRecord(
        id=row["id"],
        flow=row["flow"],
        customer_id=row["customer_id"],
        order_id=row["order_id"],
        event_id=row["event_id"],
        status=EnrolmentStatus(row["status"]),
        step=int(row["step"]),
        due_at=opt_from_db(row["due_at"]),
        waiting_for=row["waiting_for"],
        started_at=from_db(row["started_at"]),
        exit_reason=row["exit_reason"],
    )


def timeline(row: Row) -> TimelineEntry:
    """A ``customer_timeline`` row."""
    return TimelineEntry(
        customer_id=row["customer_id"],
        at=from_db(row["at"]),
        what=row["what"],
        reason=row["reason"],
        flow=row["flow"],
        step=row["step"],
        kind=row["kind"],
        message_id=row["message_id"],
        detail=json.loads(row["detail"]),
    )


def step_counts(row: Row) -> StepCounts:
    """One row of the step metrics query (columns ``COUNTED``, holdout, totals)."""
    return StepCounts(
        flow=row["flow"],
        step=row["step"],
        **{k: int(row[k] or 0) for k in COUNTED},
        variant=row["variant"],
        holdout=int(row["holdout"] or 0),
        # Totals are decimal strings: summed here exactly, never as SQL floats.
        revenue=sum((Decimal(x) for x in (row["totals"] or "").split()), Decimal(0)),
    )
