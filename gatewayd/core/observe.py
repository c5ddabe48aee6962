"""What happened in the gateway, as events its observers subscribe to (metrics, status page).

The core emits one small frozen event per fact worth counting, right after the store
committed it; an observer is a plain callable run synchronously on the event loop, so it
must be cheap and never block. An observer that raises is logged and skipped: watching the
gateway can never break it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from gatewayd.store import Category, MessageStatus, OptOutScope

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class MessageQueued:
    """A new message was stored (an idempotent replay is not new)."""

    message_id: str
    category: Category
    segments: int
    at: datetime


@dataclass(frozen=True)
class MessageStatusChanged:
    """A message reached ``status`` (``modem``: the modem that caused it, if any).

    Emitted for sent, unconfirmed, delivered, failed, expired and cancelled. A report for
    one part of a message that had already failed repeats ``failed`` for the same id.
    """

    message_id: str
    status: MessageStatus
    modem: str | None
    at: datetime


@dataclass(frozen=True)
class PartSent:
    """``+CMGS: <mr>`` came back: ``seconds`` from writing ``AT+CMGS`` to the answer."""

    message_id: str
    part: int
    modem: str
    sim: str
    seconds: float
    at: datetime


@dataclass(frozen=True)
class SendFailed:
    """A send attempt failed with ``code`` (``cms_<n>``, ``at_timeout``, ``modem_gone``...)."""

    message_id: str
    modem: str
    code: str
    at: datetime


@dataclass(frozen=True)
class ReportMatched:
    """A status report matched a part (``final`` False: "still trying")."""

    message_id: str
    part: int
    modem: str
    final: bool
    delivered: bool
    message_status: MessageStatus
    at: datetime


@dataclass(frozen=True)
class InboundReceived:
    """A new inbound SMS part was committed (a part read twice is not new)."""

    inbound_id: str
    modem: str
    complete: bool
    at: datetime


@dataclass(frozen=True)
class OptOutChanged:
    """A number was added to (``added``) or taken off the opt-out list."""

    scope: OptOutScope | None
    source: str
    added: bool
    at: datetime


@dataclass(frozen=True)
class WebhookAttempted:
    """One webhook POST: ``outcome`` is ``delivered``, ``retry`` or ``gave_up``."""

    event: str
    outcome: str
    at: datetime


@dataclass(frozen=True)
class AlarmChanged:
    """A health alarm of one modem raised (``raised``) or cleared (gatewayd.fleet.alarms)."""

    modem: str
    alarm: str
    raised: bool
    detail: str
    at: datetime


GatewayEvent = (
    MessageQueued
    | MessageStatusChanged
    | PartSent
    | SendFailed
    | ReportMatched
    | InboundReceived
    | OptOutChanged
    | WebhookAttempted
    | AlarmChanged
)
Observer = Callable[[GatewayEvent], None]


class Observers:
    """The gateway's observers: :meth:`subscribe` one, :meth:`emit` to all."""

    def __init__(self) -> None:
        self._observers: list[Observer] = []

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Call ``observer(event)`` for every event; returns the function that unsubscribes."""
        self._observers.append(observer)

        def unsubscribe() -> None:
            if observer in self._observers:
                self._observers.remove(observer)

        return unsubscribe

    def emit(self, event: GatewayEvent) -> None:
        """Hand ``event`` to every observer; one that raises is logged, never propagated."""
        for observer in tuple(self._observers):
            try:
                observer(event)
            except Exception:
                log.exception("observer.failed", observed=type(event).__name__)
