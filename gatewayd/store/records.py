"""Values the store takes and hands back: states as enums, rows as frozen dataclasses.

The core builds its public views from these; a second store implementation (PostgreSQL)
returns exactly the same values, so nothing above the store knows which one runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar


class Category(StrEnum):
    """Why a message is sent: it decides the opt-out scope that refuses it and its priority."""

    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"
    OTP = "otp"  # a one-time code: urgent, short-lived, redacted once final
    ALERT = "alert"  # a security or service alert: urgent, redacted once final

    @property
    def urgent(self) -> bool:
        """Never deferred, highest priority, may use a SIM's reserved share."""
        return self in (Category.OTP, Category.ALERT)


class Priority(StrEnum):
    """Dispatch order before ``send_at`` and age."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"  # otp and alert messages

    @property
    def rank(self) -> int:
        """Higher goes first."""
        return _PRIORITY_RANK[self]

    @classmethod
    def from_rank(cls, rank: int) -> Priority:
        """The priority stored as ``rank``."""
        return _RANK_PRIORITY[rank]


_PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.URGENT: 3}
_RANK_PRIORITY = {rank: prio for prio, rank in _PRIORITY_RANK.items()}


class MessageStatus(StrEnum):
    """queued -> sending -> sent -> delivered | failed | expired | cancelled (+ unconfirmed)."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    UNCONFIRMED = "unconfirmed"


# A message in one of these still counts in the queue depth.
PENDING_STATUSES = frozenset({MessageStatus.QUEUED, MessageStatus.SENDING})


class PartStatus(StrEnum):
    """One SMS part on its way; ``report_timeout`` is still sent, never failed."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    REPORT_TIMEOUT = "report_timeout"
    UNCONFIRMED = "unconfirmed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


# Parts that left the modem (or may have): never sent again under at-most-once.
GONE_OUT = frozenset(
    {
        PartStatus.SENT,
        PartStatus.DELIVERED,
        PartStatus.REPORT_TIMEOUT,
        PartStatus.UNCONFIRMED,
    }
)


class OptOutScope(StrEnum):
    """``all`` refuses every message; ``marketing`` only ``category = marketing``."""

    ALL = "all"
    MARKETING = "marketing"

    def covers(self, category: Category) -> bool:
        """Whether this scope refuses a message of ``category``."""
        return self is OptOutScope.ALL or category is Category.MARKETING


class InboundStatus(StrEnum):
    """An inbound message: all parts here, or shown without some after a while."""

    PARTIAL = "partial"
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"


@dataclass(frozen=True)
class NewPart:
    """One encoded part to store."""

    seq: int
    pdu: str
    tpdu_length: int


@dataclass(frozen=True)
class NewMessage:
    """A validated, encoded message ready to be stored (one submit)."""

    id: str
    recipient: str  # E.164
    text: str
    category: Category
    priority: Priority
    encoding: str
    parts: tuple[NewPart, ...]
    replaced_chars: tuple[tuple[str, str], ...]
    send_at: datetime
    expires_at: datetime | None
    modem: str | None
    pool: str | None
    metadata: dict[str, Any] | None
    callback_url: str | None
    force_ucs2: bool
    smart: bool
    created_at: datetime
    idempotency_key: str | None = None
    request_hash: str | None = None
    optout_exempt: bool = False  # the one confirmation that answers a STOP


@dataclass(frozen=True)
class Inserted:
    """A submit stored (``duplicate``: an idempotent replay of an earlier one)."""

    message: MessageRecord
    duplicate: bool


@dataclass(frozen=True)
class PartRecord:
    """A stored part."""

    seq: int
    pdu: str
    tpdu_length: int
    status: PartStatus
    identity: str | None
    mr: int | None
    attempts: int
    error_code: str | None
    error_text: str | None
    sent_at: datetime | None
    delivered_at: datetime | None
    report_status: int | None


@dataclass(frozen=True)
class HistoryRecord:
    """One state change with its time."""

    at: datetime
    status: str
    part_seq: int | None
    detail: str | None


@dataclass(frozen=True)
class MessageRecord:
    """A stored message; ``parts`` and ``history`` are filled where asked for."""

    seq: int
    id: str
    recipient: str
    text: str
    category: Category
    priority: Priority
    status: MessageStatus
    encoding: str
    segments: int
    replaced_chars: tuple[tuple[str, str], ...]
    send_at: datetime
    expires_at: datetime | None
    modem: str | None
    pool: str | None
    metadata: dict[str, Any] | None
    callback_url: str | None
    force_ucs2: bool
    smart: bool
    optout_exempt: bool
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime
    attempts: int
    identity: str | None  # the SIM the parts went (are going) through
    bound_until: datetime | None
    error_code: str | None
    error_text: str | None
    stray_part_possible: bool
    parts: tuple[PartRecord, ...] = ()
    history: tuple[HistoryRecord, ...] = ()


@dataclass(frozen=True)
class RouteQuery:
    """Which queued messages one modem's worker may take (DESIGN: routing, stickiness)."""

    identity: str
    modem: str
    pool: str
    # Identities of the other modems that are ready now: a recipient sticky to one of them,
    # or a message bound to one of them, stays with it; a message that failed on this SIM
    # goes to one of them (to one in this pool when the message names the pool).
    others_ready: frozenset[str]
    others_ready_in_pool: frozenset[str] = frozenset()
    max_parts: int | None = None  # the limiter's most parts ever possible (None: no limit)


@dataclass(frozen=True)
class NextWork:
    """What a worker should do next: ``message`` is due now, else sleep until ``wake_at``.

    ``took_sim``: this call made the SIM this node's (PostgreSQL: it was free or another
    node's until now), so the SIM's send log must be read again before sending (another
    node may have sent on it since this node loaded the log).
    """

    message: MessageRecord | None
    wake_at: datetime | None
    took_sim: bool = False


@dataclass(frozen=True)
class ReportIn:
    """A delivery report as the core hands it to the store."""

    identity: str
    mr: int
    recipient: str
    status: int
    final: bool  # not "still trying"
    delivered: bool
    status_text: str
    discharge_time: datetime


@dataclass(frozen=True)
class ReportMatch:
    """Where a report landed; ``message_status`` is the message's status after it."""

    message_id: str
    part_seq: int
    message_status: MessageStatus


@dataclass(frozen=True)
class OptOutRecord:
    """One number on the opt-out list."""

    seq: int
    number: str
    scope: OptOutScope
    source: str
    created_at: datetime


@dataclass(frozen=True)
class OptOutResult:
    """An opt-out committed: the entry and the queued messages it cancelled."""

    record: OptOutRecord
    cancelled: tuple[str, ...]


@dataclass(frozen=True)
class NewInboundPart:
    """One received SMS (or one part of a concatenated one), decoded."""

    identity: str
    modem: str
    sender: str
    scts: datetime
    pdu_hash: str
    text: str
    concat_ref: int | None
    concat_total: int | None
    concat_seq: int | None
    received_at: datetime


@dataclass(frozen=True)
class InboundRecord:
    """An inbound message as far as its parts have arrived."""

    seq: int
    id: str
    identity: str
    modem: str
    sender: str
    text: str
    status: InboundStatus
    parts_received: int
    parts_total: int
    first_received_at: datetime
    completed_at: datetime | None
    processed: bool


@dataclass(frozen=True)
class WebhookDelivery:
    """One claimed outbox row (what the webhook worker posts)."""

    id: str
    url: str
    event: str
    payload_json: str
    attempts: int


@dataclass(frozen=True)
class WebhookFailure:
    """A delivery that gave up, kept visible for the API."""

    seq: int
    id: str
    url: str
    event: str
    payload_json: str
    attempts: int
    last_error: str | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The failure as the API shows it."""
        return {
            "id": self.id,
            "url": self.url,
            "event": self.event,
            "payload": json.loads(self.payload_json),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "created_at": self.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }


class _Jsonable(Protocol):
    @property
    def seq(self) -> int: ...

    def to_json(self) -> dict[str, Any]: ...


T = TypeVar("T", bound=_Jsonable)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a newest-first listing; ``next_cursor`` fetches the next one."""

    items: tuple[T, ...]
    next_cursor: str | None

    @classmethod
    def of(cls, items: Sequence[T], limit: int) -> Page[T]:
        """A page of ``items`` (fetched with ``limit``): a full page may have a next one."""
        cursor = str(items[-1].seq) if items and len(items) >= limit else None
        return cls(tuple(items), cursor)

    def to_json(self) -> dict[str, Any]:
        """``{"items": [...], "next_cursor": ...}``."""
        return {"items": [i.to_json() for i in self.items], "next_cursor": self.next_cursor}


def parse_cursor(cursor: str | None) -> int:
    """The position a cursor stands for (``None``: the start, newest first).

    Raises ``ValueError`` naming the cursor when it is not one this store handed out.
    """
    if cursor is None or cursor == "":
        return 2**62
    if not cursor.isdigit() or len(cursor) > 18:
        raise ValueError(f"invalid cursor {cursor!r}")
    return int(cursor)
