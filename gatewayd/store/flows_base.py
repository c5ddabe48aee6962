"""The flows' persistence interface and its records (``flows_sqlite``, ``flows_postgres``;
``flows_open.open_flow_store`` picks one by the database setting).

Events, customers with their orders (so segments can use history), enrolments with the
index and due time of their next step (the engine keeps no timer in memory: a restart
resumes every enrolment from here), the messages sent per step, short links and clicks.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol


class EnrolmentStatus(StrEnum):
    """Where an enrolment is: due at ``due_at``, waiting for an event, or over."""

    ACTIVE = "active"  # the step at ``step`` runs at ``due_at``
    WAITING = "waiting"  # waiting for ``waiting_for`` (or ``due_at``, its timeout)
    DONE = "done"  # ran its last step
    EXITED = "exited"  # left early: an exit event, an opt-out, a branch to exit


@dataclass(frozen=True)
class NewEvent:
    """One event as received (``payload`` is the request body as JSON text)."""

    event_id: str
    type: str
    customer_id: str | None
    order_id: str | None
    occurred_at: datetime
    received_at: datetime
    payload: str


@dataclass(frozen=True)
class CustomerRecord:
    """A customer with the consent they gave (the latest event wins)."""

    id: str
    phone: str
    name: str | None
    locale: str | None
    timezone: str | None
    country: str | None
    consent_transactional: bool
    consent_marketing: bool
    consent_source: str | None
    consent_at: datetime | None


@dataclass(frozen=True)
class TimelineEntry:
    """One decision about a customer (a send, a deferral, a skip) or a preference change."""

    customer_id: str
    at: datetime
    what: str  # sent | deferred | skipped | preferences
    reason: str | None = None  # preference, cap, quiet_hours, no_consent, opted_out, ...
    flow: str | None = None
    step: str | None = None
    kind: str | None = None
    message_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The API's ``TimelineEntry``."""
        return {
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "what": self.what,
            "reason": self.reason,
            "flow": self.flow,
            "step": self.step,
            "kind": self.kind,
            "message_id": self.message_id,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class OrderRecord:
    """An order of a customer; ``data`` is its JSON object as the last event carried it."""

    id: str
    customer_id: str
    placed_at: datetime
    status: str
    total: Decimal
    currency: str
    data: dict[str, Any]


@dataclass(frozen=True)
class EnrolmentRecord:
    """One customer (and order) going through one flow."""

    id: str
    flow: str
    customer_id: str
    order_id: str | None
    event_id: str
    status: EnrolmentStatus
    step: int
    due_at: datetime | None
    waiting_for: str | None
    started_at: datetime
    exit_reason: str | None


@dataclass(frozen=True)
class NewSend:
    """What one send step did: a message id, or the reason nothing was sent."""

    enrolment_id: str
    flow: str
    step: str
    customer_id: str
    phone: str
    category: str
    outcome: str  # "sent", or why not: "no_consent", "opted_out", "refused", "holdout"
    message_id: str | None
    at: datetime
    send_at: datetime
    variant: str | None = None  # the experiment's arm ("holdout" for the control)


@dataclass(frozen=True)
class LinkTarget:
    """Where a short link goes and what the message carrying it did."""

    code: str
    url: str
    enrolment_id: str
    step: str
    customer_id: str | None
    flow: str | None
    delivered_at: datetime | None


@dataclass(frozen=True)
class StepCounts:
    """Raw counts of one send step since a time (rates are derived by the caller)."""

    flow: str
    step: str
    sent: int
    skipped: int
    delivered: int
    failed: int
    clicked: int
    replied: int
    opted_out: int
    converted: int
    variant: str | None = None  # one arm of an experiment (None: the step has none)
    holdout: int = 0  # enrolments in the holdout that reached the step (sent nothing)
    revenue: Decimal = Decimal(0)  # sum of order.total of the converting orders
    answered: int = 0  # survey answers recorded against the step


class FlowStore(Protocol):
    """What the flow engine needs from persistence."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def ingest(
        self,
        event: NewEvent,
        customer: CustomerRecord | None,
        order: OrderRecord | None,
    ) -> bool:
        """Store the event (and customer, order) in one commit; False if its id was seen and
        processed (or, on a shared database, is being processed by another live node)."""
        ...

    async def mark_processed(self, event_id: str) -> None:
        """Record that everything an event starts, ends or resumes is done."""
        ...

    async def unprocessed_events(self) -> list[NewEvent]:
        """Events stored but not processed (a crash came in between), oldest first."""
        ...

    async def event_data(self, event_id: str) -> dict[str, Any]:
        """The ``data`` object an event carried (empty when none)."""
        ...

    async def seen_event(
        self, type: str, customer_id: str, order_id: str | None, since: datetime | None
    ) -> bool:
        """Whether an event of ``type`` for the customer (and order) was stored (since then)."""
        ...

    async def customer(self, customer_id: str) -> CustomerRecord | None: ...
    async def order(self, order_id: str) -> OrderRecord | None: ...
    async def orders_of(self, customer_id: str) -> list[OrderRecord]: ...

    async def enrol(self, items: list[EnrolmentRecord], now: datetime) -> list[str]:
        """Insert enrolments not already made from the same event; returns the new ids."""
        ...

    async def enrolment(self, enrolment_id: str) -> EnrolmentRecord | None: ...
    async def open_enrolments(self, customer_id: str) -> list[EnrolmentRecord]: ...
    async def claim_due(self, now: datetime, limit: int) -> list[EnrolmentRecord]:
        """Due enrolments (next step or wait timeout), earliest first, that this engine now
        runs: on a shared database each is this node's until its next ``move`` (or until
        its lease runs out, should the node die on the way)."""
        ...

    async def next_due(self) -> datetime | None: ...

    async def move(
        self,
        enrolment_id: str,
        *,
        status: EnrolmentStatus,
        step: int,
        due_at: datetime | None,
        waiting_for: str | None,
        now: datetime,
        exit_reason: str | None = None,
    ) -> None:
        """Set where an enrolment is (the engine's only write to an enrolment)."""
        ...

    async def add_links(
        self, enrolment_id: str, step: str, links: list[tuple[str, str]], now: datetime
    ) -> None: ...
    async def links_of(self, enrolment_id: str, step: str) -> dict[str, str]: ...
    async def link(self, code: str) -> LinkTarget | None: ...
    async def record_click(
        self,
        code: str,
        at: datetime,
        *,
        method: str,
        user_agent: str | None,
        counted: bool,
        reason: str | None,
    ) -> int: ...

    def number_lock(self, phone: str) -> AbstractAsyncContextManager[None]:
        """Held from the caps and gap check of a send to ``phone`` to its ``record_send``:
        on a shared database no other node checks or records a send to it meanwhile."""
        ...

    async def record_send(self, send: NewSend) -> None:
        """Record what a send step did; once per enrolment and step (a second is ignored)."""
        ...

    async def sent_step(self, enrolment_id: str, step: str) -> NewSend | None: ...
    async def send_times(
        self, customer_id: str, since: datetime, category: str | None
    ) -> list[datetime]: ...
    async def clicked(self, enrolment_id: str, step: str) -> bool: ...
    async def replied(self, phone: str, since: datetime) -> bool: ...
    async def optout_scope(self, phone: str) -> str | None: ...

    async def customer_by_phone(self, phone: str) -> CustomerRecord | None: ...
    async def latest_occurred(self, type: str, order_id: str) -> datetime | None: ...
    async def queued_sends(self, flows: Sequence[str], order_id: str) -> list[NewSend]: ...
    async def recent_sends(self, customer_id: str, since: datetime) -> list[NewSend]: ...
    async def record_answer(
        self, enrolment_id: str, step: str, answer: str, inbound_id: str, at: datetime
    ) -> bool: ...
    async def answer(self, enrolment_id: str, step: str) -> str | None: ...
    async def inbound_text(self, inbound_id: str) -> tuple[str, str] | None: ...
    async def preferences(self, customer_id: str) -> tuple[str, str] | None: ...
    async def set_preferences(
        self, customer_id: str, kinds: str, frequency: str, *, source: str, at: datetime
    ) -> None: ...
    async def add_timeline(self, entry: TimelineEntry) -> None: ...
    async def timeline(self, customer_id: str, limit: int) -> list[TimelineEntry]: ...
    async def export_customer(self, customer_id: str) -> dict[str, Any] | None: ...
    async def queued_to(self, phone: str) -> list[str]: ...
    async def secret(self, name: str) -> bytes: ...
    async def erase_customer(self, customer_id: str, at: datetime) -> bool: ...
    async def purge_texts(self, before: datetime) -> tuple[int, int]: ...

    async def enrolled_counts(self, since: datetime) -> dict[str, int]: ...
    async def step_counts(
        self, since: datetime, *, reply_window: float, conversion_window: float
    ) -> list[StepCounts]: ...
