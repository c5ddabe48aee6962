"""The store interface: what the core needs from persistence, whatever the database.

SQLite (``gatewayd.store.sqlite``) implements it now; a PostgreSQL implementation (asyncpg,
``FOR UPDATE SKIP LOCKED`` in :meth:`Store.claim`) can follow without touching the core.
Every time is passed in from the daemon's clock; the store never reads a clock itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from gatewayd.store.records import (
    Category,
    InboundRecord,
    Inserted,
    MessageRecord,
    MessageStatus,
    NewInboundPart,
    NewMessage,
    NextWork,
    OptOutRecord,
    OptOutResult,
    OptOutScope,
    Page,
    ReportIn,
    ReportMatch,
    RouteQuery,
    WebhookDelivery,
    WebhookFailure,
)


class Store(Protocol):
    """Persistence of messages, parts, history, inbound, opt-outs, limits and the outbox."""

    async def open(self) -> None:
        """Open the file, run migrations, load the queue depth, start the submit writer."""
        ...

    async def close(self) -> None:
        """Stop the writer (failing submits still waiting) and close both connections."""
        ...

    def set_webhook_url(self, url: str | None) -> None:
        """The URL every event goes to (besides a message's ``callback_url``)."""
        ...

    def on_queued(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after a commit that made a message dispatchable."""
        ...

    def on_outbox(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after a commit that wrote webhook events."""
        ...

    def on_optout(self, callback: Callable[[str, OptOutScope | None], None]) -> None:
        """Call ``callback(number, scope)`` (``None``: removed) when another node changed it.

        Changes this process makes are not announced back (the caller knows them).
        """
        ...

    async def announce_modems(self, modems: Mapping[str, str]) -> None:
        """This node drives ``modems`` (name -> pool) from now on: other nodes' submits may
        name them."""
        ...

    def modems_elsewhere(self) -> Mapping[str, str]:
        """The modems (name -> pool) other nodes announced, as of the last heartbeat."""
        ...

    def on_clock_offset(self, callback: Callable[[float], None]) -> None:
        """Call ``callback(seconds)`` with how far the database's clock is ahead of this
        host's, now and whenever it changes: nodes sharing a database follow its clock."""
        ...

    def queue_depth(self) -> int:
        """Messages queued or being sent: a counter, never a scan."""
        ...

    async def ping(self) -> None:
        """Raise if the database cannot take a write lock now."""
        ...

    async def insert_messages(self, items: Sequence[NewMessage]) -> list[Inserted | Exception]:
        """Store ``items``; each result is ``Inserted`` or the refusal for that item."""
        ...

    async def get_message(self, message_id: str) -> MessageRecord | None:
        """One message with its parts and history, or ``None``."""
        ...

    async def list_messages(
        self,
        *,
        status: MessageStatus | None = None,
        recipient: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        before_seq: int | None = None,
    ) -> list[MessageRecord]:
        """Newest first, ``before_seq`` continuing a page."""
        ...

    async def next_work(self, route: RouteQuery, now: datetime, *, sticky: bool) -> NextWork:
        """The next message ``route``'s worker may send now, else when to look again."""
        ...

    async def claim(self, message_id: str, identity: str, now: datetime) -> MessageRecord | None:
        """Take a queued message for ``identity``'s worker; ``None`` if someone was first."""
        ...

    async def replace_parts(
        self, message_id: str, parts: Sequence[tuple[str, int]], now: datetime, reason: str
    ) -> MessageRecord:
        """Re-encoded parts for a whole resend on another SIM (new concatenation reference)."""
        ...

    async def part_sending(
        self, message_id: str, seq: int, identity: str, modem: str, now: datetime
    ) -> None:
        """Mark a part ``sending`` and count it against ``identity``'s limits (before Ctrl-Z)."""
        ...

    async def part_sent(
        self,
        message_id: str,
        seq: int,
        mr: int,
        now: datetime,
        *,
        counted_at: datetime | None = None,
        epoch: int | None = None,
    ) -> MessageStatus:
        """Record ``+CMGS: <mr>``; the message becomes ``sent`` with its last part.

        ``epoch``: the claim the part was sent under, when the answer is written later from
        the outcome journal (PostgreSQL fences on it; ``ClaimLost`` once another node took
        the message over).
        """
        ...

    def claim_epoch(self, message_id: str) -> int | None:
        """The epoch of this node's claim on ``message_id`` (``None``: SQLite, or none)."""
        ...

    async def part_unconfirmed(
        self,
        message_id: str,
        seq: int,
        now: datetime,
        detail: str,
        *,
        counted_at: datetime | None = None,
        left_by: datetime | None = None,
    ) -> MessageStatus:
        """The part may or may not have gone (at-most-once: never resent).

        ``counted_at``: when the part was counted against its SIM's limits; the count moves
        to ``left_by`` (default ``now``), the latest moment the part may have left the SIM.
        """
        ...

    async def requeue(
        self,
        message_id: str,
        now: datetime,
        *,
        next_attempt_at: datetime,
        count_attempt: bool,
        avoid_identity: str | None,
        bound_until: datetime | None,
        error_code: str | None = None,
        error_text: str | None = None,
    ) -> None:
        """Hand a claimed message back to the queue (parts not yet out go back to queued)."""
        ...

    async def fail_message(
        self, message_id: str, now: datetime, *, code: str, text: str
    ) -> MessageStatus:
        """Fail a message for good: parts not yet out fail with it; webhook."""
        ...

    async def cancel_message(
        self, message_id: str, now: datetime, *, reason: str, allow_sending: bool = False
    ) -> MessageRecord:
        """Cancel a queued message (``WrongState`` otherwise; ``sending`` only by dispatch)."""
        ...

    async def expire_due(self, now: datetime) -> list[str]:
        """Expire every queued message past its ``expires_at``; returns their ids."""
        ...

    async def next_expiry(self) -> datetime | None:
        """The earliest ``expires_at`` among queued messages."""
        ...

    async def recover(
        self,
        now: datetime,
        *,
        resend_categories: frozenset[Category],
        bound_until: datetime,
        send_within: float = 0.0,
    ) -> tuple[int, int]:
        """Resolve work a crash left ``sending`` (see gatewayd.core.dispatch for the rule).

        The count of each such part moves to the later of ``now`` and its own time plus
        ``send_within`` seconds: the latest it may have left its SIM.
        """
        ...

    async def send_log(
        self, since: datetime, identity: str | None = None
    ) -> dict[str, list[datetime]]:
        """Every counted part per SIM identity since ``since``, oldest first.

        ``identity``: that SIM's parts only (a SIM this node takes over from another).
        """
        ...

    async def prune_send_log(self, before: datetime) -> None:
        """Forget counted parts older than every window."""
        ...

    async def apply_report(
        self, report: ReportIn, now: datetime, *, since: datetime
    ) -> ReportMatch | None:
        """Match a report to the oldest part without a final report (see DESIGN: reports)."""
        ...

    async def timeout_reports(self, now: datetime, *, sent_before: datetime) -> int:
        """Parts sent before ``sent_before`` with no final report become ``report_timeout``."""
        ...

    async def next_report_deadline(self) -> datetime | None:
        """The send time of the oldest part still waiting for its report."""
        ...

    async def add_optout(
        self, number: str, scope: OptOutScope, source: str, now: datetime
    ) -> OptOutResult:
        """Put ``number`` on the list and cancel, in the same transaction, what it covers."""
        ...

    async def remove_optout(self, number: str, now: datetime) -> bool:
        """Take ``number`` off the list; ``False`` if it was not on it."""
        ...

    async def optouts(self) -> dict[str, OptOutScope]:
        """The whole list (the core keeps it in memory for the check at the prompt)."""
        ...

    async def list_optouts(self, *, limit: int, before_seq: int | None) -> list[OptOutRecord]:
        """Newest first."""
        ...

    async def record_inbound(self, part: NewInboundPart) -> tuple[InboundRecord, bool]:
        """Store one received part, reassembling; returns the message and whether it is new."""
        ...

    async def mark_incomplete(self, now: datetime, *, first_before: datetime) -> list[str]:
        """Show partial messages older than ``first_before`` as incomplete; returns ids."""
        ...

    async def next_incomplete(self) -> datetime | None:
        """When the oldest partial message started arriving."""
        ...

    async def mark_inbound_processed(self, inbound_id: str) -> None:
        """Keywords of this message were acted on."""
        ...

    async def unprocessed_inbound(self) -> list[InboundRecord]:
        """Complete messages whose keywords were never acted on (a crash in between)."""
        ...

    async def list_inbound(self, *, limit: int, before_seq: int | None) -> list[InboundRecord]:
        """Complete and incomplete (shown) inbound messages, newest first."""
        ...

    async def claim_webhooks(self, now: datetime, limit: int) -> list[WebhookDelivery]:
        """Due deliveries, leased so a crash mid-POST retries them later."""
        ...

    async def webhook_delivered(self, id: str, now: datetime) -> None:
        """The receiver answered 2xx."""
        ...

    async def webhook_retry(self, id: str, next_at: datetime, error: str) -> None:
        """Try again at ``next_at``."""
        ...

    async def webhook_gave_up(self, id: str, error: str) -> None:
        """No more attempts; kept for ``list_webhook_failures``."""
        ...

    async def list_webhook_failures(
        self, limit: int, cursor: str | None = None
    ) -> Page[WebhookFailure]:
        """Deliveries that gave up, newest first; ``cursor`` continues a page."""
        ...

    async def record_event(self, event: str, data: dict[str, object], now: datetime) -> None:
        """Write one webhook event that belongs to no message (fleet alarms, missed calls)."""
        ...

    async def pending_webhooks(self) -> list[WebhookDelivery]:
        """Every undelivered outbox row, oldest first (inspection and tests)."""
        ...

    async def unmatched_reports(self) -> int:
        """How many reports matched no part."""
        ...
