"""Inbound SMS, delivery reports and the keywords that change the opt-out list.

An inbound SMS is committed (with its webhook) before the handler returns, and the driver
deletes it from the modem only then; a part read twice is a no-op. Keywords are acted on in
a second transaction that marks the message processed; a crash in between is caught up at
the next start (``Gateway.start`` processes what is complete and unprocessed).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import phonenumbers
import structlog

from drivers.clock import Clock
from drivers.modem import InboundSms
from drivers.pdu import StatusCategory, StatusReport
from gatewayd.config.model import GatewayConfig
from gatewayd.core.keywords import KeywordAction, KeywordMatcher
from gatewayd.core.observe import (
    InboundReceived,
    MessageStatusChanged,
    Observers,
    OptOutChanged,
    ReportMatched,
)
from gatewayd.core.ports import ModemPort
from gatewayd.store import (
    InboundRecord,
    InboundStatus,
    MessageStatus,
    NewInboundPart,
    OptOutScope,
    ReportIn,
    Store,
)

log = structlog.get_logger(__name__)

# (number, text, modem name, exempt from the opt-out check) -> queued
ReplySender = Callable[[str, str, str, bool], Awaitable[None]]


def inbound_sender(raw: str, region: str) -> str:
    """A sender as E.164 when it is a phone number; alphanumeric senders stay as they are."""
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return raw
    if not phonenumbers.is_possible_number(parsed):
        return raw
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class AutoReplies:
    """At most ``per_hour`` automatic replies to one number in any hour (robots ping-pong)."""

    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self._sent: dict[str, deque[datetime]] = {}

    def allow(self, number: str, now: datetime) -> bool:
        """Whether a reply may go now; counts it if so."""
        times = self._sent.setdefault(number, deque())
        while times and times[0] <= now - timedelta(hours=1):
            times.popleft()
        if len(times) >= self.per_hour:
            return False
        times.append(now)
        return True


class InboundService:
    """Stores inbound SMS and reports, acts on keywords."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        config: GatewayConfig,
        optouts: dict[str, OptOutScope],
        reply: ReplySender,
        *,
        observers: Observers | None = None,
    ) -> None:
        self._store = store
        self._observers = observers or Observers()
        self._clock = clock
        self._optouts = optouts
        self._reply = reply
        self._config = config
        self.matcher = KeywordMatcher.from_config(config.keywords)
        self.auto_replies = AutoReplies(config.keywords.auto_reply_per_hour)

    def reconfigure(self, config: GatewayConfig) -> None:
        """Apply keyword and sending settings (SIGHUP)."""
        self._config = config
        self.matcher = KeywordMatcher.from_config(config.keywords)
        self.auto_replies.per_hour = config.keywords.auto_reply_per_hour

    async def on_inbound(self, modem: ModemPort, sms: InboundSms) -> None:
        """Commit one received SMS (part), then act on a completed message's keywords."""
        msg = sms.message
        identity = modem.identity or modem.name
        sender = inbound_sender(msg.sender, self._config.sending.default_region)
        concat = msg.concat if msg.concat is not None and msg.concat.total > 1 else None
        part = NewInboundPart(
            identity=identity,
            modem=modem.name,
            sender=sender,
            scts=msg.scts,
            pdu_hash=hashlib.sha256("".join(sms.pdu.split()).upper().encode()).hexdigest(),
            text=msg.text,
            concat_ref=concat.ref if concat else None,
            concat_total=concat.total if concat else None,
            concat_seq=concat.seq if concat else None,
            received_at=self._clock.now(),
        )
        rec, new = await self._store.record_inbound(part)
        if new:
            complete = rec.status is InboundStatus.COMPLETE
            self._observers.emit(InboundReceived(rec.id, modem.name, complete, part.received_at))
        log.info(
            "sms.received",
            modem=modem.name,
            sender=sender,
            inbound=rec.id,
            new=new,
            parts=f"{rec.parts_received}/{rec.parts_total}",
        )
        if rec.status is InboundStatus.COMPLETE and not rec.processed:
            await self.process(rec)

    async def process(self, rec: InboundRecord) -> None:
        """Act on the keyword ``rec`` carries (if any), then mark it processed."""
        action = self.matcher.match(rec.text) if rec.sender.startswith("+") else None
        now = self._clock.now()
        if action is KeywordAction.STOP:
            result = await self._store.add_optout(rec.sender, OptOutScope.ALL, "sms", now)
            self._optouts[rec.sender] = result.record.scope
            log.info("optout.added", number=rec.sender, cancelled=len(result.cancelled))
            self._observers.emit(OptOutChanged(result.record.scope, "sms", True, now))
            for message_id in result.cancelled:
                self._observers.emit(
                    MessageStatusChanged(message_id, MessageStatus.CANCELLED, None, now)
                )
        elif action is KeywordAction.START:
            removed = await self._store.remove_optout(rec.sender, now)
            self._optouts.pop(rec.sender, None)
            log.info("optout.removed", number=rec.sender, was_listed=removed)
            if removed:
                self._observers.emit(OptOutChanged(None, "sms", False, now))
        if action is not None:
            if self.auto_replies.allow(rec.sender, now):
                text = self.matcher.replies[action]
                # The STOP confirmation and HELP answer reach an opted-out number too.
                exempt = action in (KeywordAction.STOP, KeywordAction.HELP)
                await self._reply(rec.sender, text, rec.modem, exempt)
            else:
                log.info("autoreply.rate_limited", number=rec.sender, keyword=str(action))
        await self._store.mark_inbound_processed(rec.id)

    async def on_report(self, modem: ModemPort, report: StatusReport) -> None:
        """Match a status report to its part (DESIGN: Status reports)."""
        identity = modem.identity
        if identity is None:
            log.warning("dlr.no_identity", modem=modem.name, mr=report.mr)
            return
        now = self._clock.now()
        window = timedelta(seconds=self._config.sending.report_match_window_seconds)
        match = await self._store.apply_report(
            ReportIn(
                identity=identity,
                mr=report.mr,
                recipient=report.recipient,
                status=report.status,
                final=report.category is not StatusCategory.PENDING,
                delivered=report.category is StatusCategory.DELIVERED,
                status_text=report.status_text,
                discharge_time=report.discharge_time,
            ),
            now,
            since=now - window,
        )
        if match is None:
            log.warning("dlr.unmatched", modem=modem.name, mr=report.mr, recipient=report.recipient)
        else:
            final = report.category is not StatusCategory.PENDING
            delivered = report.category is StatusCategory.DELIVERED
            self._observers.emit(
                ReportMatched(
                    match.message_id,
                    match.part_seq,
                    modem.name,
                    final,
                    delivered,
                    match.message_status,
                    now,
                )
            )
            if final and match.message_status in (MessageStatus.DELIVERED, MessageStatus.FAILED):
                self._observers.emit(
                    MessageStatusChanged(match.message_id, match.message_status, modem.name, now)
                )
            log.info(
                "dlr.matched",
                message=match.message_id,
                part=match.part_seq,
                tp_st=report.status,
                status=str(match.message_status),
            )
