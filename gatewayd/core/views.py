"""What the core hands to callers: requests and read-only views, each with ``to_json``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gatewayd.store import (
    Category,
    HistoryRecord,
    InboundRecord,
    MessageRecord,
    MessageStatus,
    OptOutRecord,
    OptOutScope,
    PartRecord,
    Priority,
)
from gatewayd.store.records import PENDING_STATUSES


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` (``None`` stays ``None``)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class SubmitRequest:
    """One message to send; ``priority`` None means HIGH for transactional, NORMAL else."""

    to: str
    text: str
    priority: Priority | None = None
    category: Category = Category.TRANSACTIONAL
    send_at: datetime | None = None
    expires_at: datetime | None = None
    modem: str | None = None
    pool: str | None = None
    metadata: Mapping[str, Any] | None = None
    callback_url: str | None = None
    force_ucs2: bool = False
    smart: bool = False


@dataclass(frozen=True)
class SubmitResult:
    """A stored submit (``duplicate``: the same idempotency key and body came again)."""

    id: str
    status: MessageStatus
    encoding: str
    segments: int
    replaced_chars: tuple[tuple[str, str], ...]
    duplicate: bool = False

    def to_json(self) -> dict[str, Any]:
        """The API's ``SubmitResult``."""
        return {
            "id": self.id,
            "status": self.status.value,
            "encoding": self.encoding,
            "segments": self.segments,
            "replaced_chars": [list(pair) for pair in self.replaced_chars],
            "duplicate": self.duplicate,
        }

    @classmethod
    def of(cls, msg: MessageRecord, *, duplicate: bool) -> SubmitResult:
        """The result for a stored message."""
        return cls(msg.id, msg.status, msg.encoding, msg.segments, msg.replaced_chars, duplicate)


@dataclass(frozen=True)
class PartView:
    """One SMS part of a message."""

    index: int
    status: str
    modem_identity: str | None
    mr: int | None
    attempts: int
    error_code: str | None
    error_text: str | None
    sent_at: datetime | None
    delivered_at: datetime | None

    @classmethod
    def of(cls, part: PartRecord) -> PartView:
        """The view of a stored part."""
        return cls(
            part.seq,
            part.status.value,
            part.identity,
            part.mr,
            part.attempts,
            part.error_code,
            part.error_text,
            part.sent_at,
            part.delivered_at,
        )

    def to_json(self) -> dict[str, Any]:
        """The API's ``Part``."""
        return {
            "index": self.index,
            "status": self.status,
            "sim": self.modem_identity,
            "mr": self.mr,
            "attempts": self.attempts,
            "error_code": self.error_code,
            "error_text": self.error_text,
            "sent_at": iso(self.sent_at),
            "delivered_at": iso(self.delivered_at),
        }


@dataclass(frozen=True)
class HistoryEntry:
    """One state change of a message or one of its parts."""

    at: datetime
    status: str
    part: int | None
    detail: str | None

    @classmethod
    def of(cls, rec: HistoryRecord) -> HistoryEntry:
        """The view of a stored history row."""
        return cls(rec.at, rec.status, rec.part_seq, rec.detail)

    def to_json(self) -> dict[str, Any]:
        """The API's ``HistoryEntry``."""
        return {"at": iso(self.at), "status": self.status, "part": self.part, "detail": self.detail}


@dataclass(frozen=True)
class MessageView:
    """A message with its parts and history."""

    seq: int
    id: str
    to: str
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
    sim: str | None
    metadata: Mapping[str, Any] | None
    callback_url: str | None
    created_at: datetime
    updated_at: datetime
    attempts: int
    error_code: str | None
    error_text: str | None
    stray_part_possible: bool
    parts: tuple[PartView, ...]
    history: tuple[HistoryEntry, ...]
    text_redacted: bool = False

    @classmethod
    def of(cls, msg: MessageRecord) -> MessageView:
        """The view of a stored message (an otp/alert's text is gone once it is final)."""
        redacted = msg.category.urgent and msg.status not in PENDING_STATUSES
        return cls(
            seq=msg.seq,
            id=msg.id,
            to=msg.recipient,
            text="" if redacted else msg.text,
            text_redacted=redacted,
            category=msg.category,
            priority=msg.priority,
            status=msg.status,
            encoding=msg.encoding,
            segments=msg.segments,
            replaced_chars=msg.replaced_chars,
            send_at=msg.send_at,
            expires_at=msg.expires_at,
            modem=msg.modem,
            pool=msg.pool,
            sim=msg.identity,
            metadata=msg.metadata,
            callback_url=msg.callback_url,
            created_at=msg.created_at,
            updated_at=msg.updated_at,
            attempts=msg.attempts,
            error_code=msg.error_code,
            error_text=msg.error_text,
            stray_part_possible=msg.stray_part_possible,
            parts=tuple(PartView.of(p) for p in msg.parts),
            history=tuple(HistoryEntry.of(h) for h in msg.history),
        )

    def to_json(self) -> dict[str, Any]:
        """The API's ``Message``."""
        return {
            "id": self.id,
            "to": self.to,
            "text": self.text,
            "text_redacted": self.text_redacted,
            "category": self.category.value,
            "priority": self.priority.value,
            "status": self.status.value,
            "encoding": self.encoding,
            "segments": self.segments,
            "replaced_chars": [list(pair) for pair in self.replaced_chars],
            "send_at": iso(self.send_at),
            "expires_at": iso(self.expires_at),
            "modem": self.modem,
            "pool": self.pool,
            "sim": self.sim,
            "metadata": dict(self.metadata) if self.metadata is not None else None,
            "callback_url": self.callback_url,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "attempts": self.attempts,
            "error_code": self.error_code,
            "error_text": self.error_text,
            "stray_part_possible": self.stray_part_possible,
            "parts": [p.to_json() for p in self.parts],
            "history": [h.to_json() for h in self.history],
        }


@dataclass(frozen=True)
class InboundView:
    """A received message (``incomplete``: shown without all its parts)."""

    seq: int
    id: str
    sender: str
    text: str
    modem: str
    sim: str
    incomplete: bool
    parts_received: int
    parts_total: int
    received_at: datetime

    @classmethod
    def of(cls, rec: InboundRecord) -> InboundView:
        """The view of a stored inbound message."""
        return cls(
            seq=rec.seq,
            id=rec.id,
            sender=rec.sender,
            text=rec.text,
            modem=rec.modem,
            sim=rec.identity,
            incomplete=rec.status.value == "incomplete",
            parts_received=rec.parts_received,
            parts_total=rec.parts_total,
            received_at=rec.completed_at or rec.first_received_at,
        )

    def to_json(self) -> dict[str, Any]:
        """The API's ``Inbound``."""
        return {
            "id": self.id,
            "from": self.sender,
            "text": self.text,
            "modem": self.modem,
            "sim": self.sim,
            "incomplete": self.incomplete,
            "parts_received": self.parts_received,
            "parts_total": self.parts_total,
            "received_at": iso(self.received_at),
        }


@dataclass(frozen=True)
class OptOutView:
    """One number on the opt-out list."""

    seq: int
    number: str
    scope: OptOutScope
    source: str
    created_at: datetime

    @classmethod
    def of(cls, rec: OptOutRecord) -> OptOutView:
        """The view of a stored opt-out."""
        return cls(rec.seq, rec.number, rec.scope, rec.source, rec.created_at)

    def to_json(self) -> dict[str, Any]:
        """The API's ``OptOut``."""
        return {
            "number": self.number,
            "scope": self.scope.value,
            "source": self.source,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True)
class LimitHeadroom:
    """How many more parts each window of a SIM's limits allows now (None: no limit)."""

    minute: int | None
    hour: int | None
    day: int | None


@dataclass(frozen=True)
class ModemStatusView:
    """One modem as the status page and ``GET /v1/modems`` show it."""

    name: str
    state: str
    state_reason: str
    sim: str | None
    pool: str
    paused: bool
    out_of_service: bool
    signal_dbm: int | None
    operator: str | None
    registration: str
    sent: int
    failed: int
    headroom: LimitHeadroom
    queue_depth: int

    def to_json(self) -> dict[str, Any]:
        """The API's ``Modem``."""
        return {
            "name": self.name,
            "state": self.state,
            "state_reason": self.state_reason,
            "sim": self.sim,
            "pool": self.pool,
            "paused": self.paused,
            "out_of_service": self.out_of_service,
            "signal_dbm": self.signal_dbm,
            "operator": self.operator,
            "registration": self.registration,
            "counters": {"sent": self.sent, "failed": self.failed},
            "headroom": {
                "minute": self.headroom.minute,
                "hour": self.headroom.hour,
                "day": self.headroom.day,
            },
            "queue_depth": self.queue_depth,
        }
