"""The gateway: submit, per-modem dispatch, reports, inbound, opt-outs, sweeps.

One :class:`Gateway` owns a worker per modem (gatewayd.core.dispatch), the in-memory
opt-out set (kept in sync with the store after each commit, for the cheap check at the
``> `` prompt), the per-SIM limiters (loaded from the store's send log at start), and one
sweep task that expires messages, times out reports and shows incomplete inbound messages,
sleeping on the clock until the next of those is due. It also owns the outcome journal
(gatewayd.core.journal: ``+CMGS`` answers the store could not take, written back when it
answers) and announces its modems, so that a node sharing the database may route to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog

from drivers.clock import Clock
from drivers.modem import InboundSms, ModemState
from drivers.pdu import PduError, StatusReport, Submit, decode
from gatewayd.config.model import GatewayConfig, Limits, ModemConfig
from gatewayd.core.dispatch import UNKNOWN_SEND_SECONDS, ModemWorker, resend_categories
from gatewayd.core.errors import (
    GatewayError,
    IdempotencyConflict,
    NotCancellable,
    NotFound,
    OptedOut,
    ValidationError,
)
from gatewayd.core.inbound import InboundService
from gatewayd.core.journal import OutcomeJournal, SentOutcome, replay
from gatewayd.core.limiter import DAY, Limiter
from gatewayd.core.observe import (
    MessageQueued,
    MessageStatusChanged,
    Observers,
    OptOutChanged,
)
from gatewayd.core.ports import ModemPort
from gatewayd.core.submit import encode_parts, normalise_number, prepare, validity_minutes
from gatewayd.core.views import (
    InboundView,
    MessageView,
    ModemStatusView,
    OptOutView,
    SubmitRequest,
    SubmitResult,
)
from gatewayd.store import (
    IdempotencyKeyReused,
    Inserted,
    MessageRecord,
    MessageStatus,
    NewMessage,
    OptOutScope,
    Page,
    RecipientOptedOut,
    Store,
    WrongState,
    parse_cursor,
)
from gatewayd.store.numbers import erased

log = structlog.get_logger(__name__)

SWEEP_MAX_SECONDS = 3600.0
# Longest a status report waits for the send in flight on its modem to be recorded: a
# +CMGS answer may take two minutes (unknown outcome after that).
REPORT_WAITS_FOR_SEND_SECONDS = 150.0
# Journaled answers are retried this soon, then less often while the store stays away.
JOURNAL_RETRY_SECONDS = 1.0
JOURNAL_RETRY_MAX_SECONDS = 5.0


class Gateway:
    """The gateway core (see the module docstring)."""

    def __init__(
        self,
        config: GatewayConfig,
        store: Store,
        *,
        clock: Clock,
        modems: Sequence[ModemPort],
        journal: OutcomeJournal | None = None,
    ) -> None:
        self._config = config
        self.store = store
        self.clock = clock
        # +CMGS answers the store could not take (database unreachable), until it can.
        self.journal = journal or OutcomeJournal()
        self._journal_task: asyncio.Task[None] | None = None
        self._optouts: dict[str, OptOutScope] = {}
        self._send_log: dict[str, list[datetime]] = {}
        self._limiters: dict[str, Limiter] = {}
        # Metrics and the status page subscribe here (gatewayd.core.observe).
        self.observers = Observers()
        configs = {m.name: m for m in config.modems}
        self._workers: dict[str, ModemWorker] = {
            m.name: ModemWorker(self, m, configs.get(m.name) or ModemConfig(m.name, port=""))
            for m in modems
        }
        self.inbound = InboundService(
            store, clock, config, self._optouts, self._auto_reply, observers=self.observers
        )
        self._sweep_wake = asyncio.Event()
        self._sweep_task: asyncio.Task[None] | None = None
        # One announcement at a time, each of the workers as they are when it runs.
        self._announce_lock = asyncio.Lock()
        self._sweep_next: datetime | None = None
        # Set while the sweep task sleeps until its next due time (observability, tests).
        self.sweep_idle = asyncio.Event()
        self._started = False

    @property
    def workers(self) -> tuple[ModemWorker, ...]:
        """One dispatch worker per modem."""
        return tuple(self._workers.values())

    # -- context for the workers ------------------------------------------------------

    @property
    def config(self) -> GatewayConfig:
        """The configuration in force."""
        return self._config

    async def keep_outcome(self, outcome: SentOutcome) -> None:
        """Journal a part's answer the store did not take; written when it answers again."""
        await self.journal.add(outcome)
        self._start_journal_writer()

    def _start_journal_writer(self) -> None:
        if self._journal_task is None or self._journal_task.done():
            self._journal_task = asyncio.create_task(self._journal_loop(), name="journal")

    async def _journal_loop(self) -> None:
        # Real time, not the business clock: this waits for a database, not for a deadline.
        delay = JOURNAL_RETRY_SECONDS
        while not await self._write_journal():
            await asyncio.sleep(delay)
            delay = min(delay * 2, JOURNAL_RETRY_MAX_SECONDS)

    async def _write_journal(self) -> bool:
        if not self.journal.pending:
            return True
        wait = timedelta(seconds=self._config.sending.failover_wait_seconds)
        done = await replay(self.journal, self.store, self.clock.now(), bound_for=wait)
        self.wake_all()
        return done

    def limiter(self, identity: str, limits: Limits) -> Limiter:
        """The limiter of one SIM (created from the send log loaded at start)."""
        lim = self._limiters.get(identity)
        if lim is None:
            lim = Limiter(limits, self._send_log.pop(identity, []), now=self.clock.now())
            self._limiters[identity] = lim
        elif lim.limits != limits:
            lim.reconfigure(limits)
        return lim

    async def reload_limiter(self, identity: str, limits: Limits) -> Limiter:
        """Read one SIM's send log again from the store (it was another node's until now)."""
        now = self.clock.now()
        log_ = await self.store.send_log(now - timedelta(seconds=DAY), identity)
        lim = Limiter(limits, log_.get(identity, []), now=now)
        self._send_log.pop(identity, None)
        self._limiters[identity] = lim
        return lim

    def may_send(self, msg: MessageRecord) -> bool:
        """The opt-out check before each part and at the ``> `` prompt (in memory)."""
        if msg.optout_exempt:
            return True
        scope = self.optout_scope(msg.recipient)
        return scope is None or not scope.covers(msg.category)

    def optout_scope(self, number: str) -> OptOutScope | None:
        """The opt-out of ``number``, also when its customer was erased (hashed entry)."""
        return self._optouts.get(number) or self._optouts.get(erased(number))

    def ready_identities(self, pool: str | None = None) -> frozenset[str]:
        """SIMs whose modems can send now (only those of ``pool`` when given)."""
        return frozenset(
            ident
            for w in self._workers.values()
            if w.usable()
            and (ident := w.modem.identity) is not None
            and (pool is None or w.config.pool == pool)
        )

    def _optout_elsewhere(self, number: str, scope: OptOutScope | None) -> None:
        # Another node committed it (PostgreSQL): the check at the prompt sees it from now.
        if scope is None:
            self._optouts.pop(number, None)
        else:
            self._optouts[number] = scope
        log.info("optout.changed_elsewhere", number=number, scope=scope)

    def wake_all(self) -> None:
        """Wake every worker (a commit or a state change may give any of them work)."""
        for worker in self._workers.values():
            worker.wake()

    def reencode(self, msg: MessageRecord) -> list[tuple[str, int]]:
        """Fresh PDUs for a whole resend, with a concatenation reference unlike the first.

        The handset must not mix the stray parts of the first attempt into the new message.
        """
        old = None
        if msg.parts:
            with contextlib.suppress(PduError):
                first = decode(msg.parts[0].pdu)
                old = first.concat.ref if isinstance(first, Submit) and first.concat else None
        ref = random.choice([r for r in range(256) if r != old])
        return encode_parts(
            self._config,
            msg.recipient,
            msg.text,
            force_ucs2=msg.force_ucs2,
            smart=msg.smart,
            concat_ref=ref,
            validity_minutes=validity_minutes(msg.send_at, msg.expires_at),
        )

    # -- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Resolve parts a crash left ``sending``, load limits and opt-outs, start workers."""
        cfg = self._config
        self.store.set_webhook_url(cfg.webhooks.url)
        self.store.on_queued(self.wake_all)
        self.store.on_optout(self._optout_elsewhere)
        now = self.clock.now()
        self._optouts.update(await self.store.optouts())
        # Answers a previous run could not write come first: recover would call those
        # parts unknown.
        await self.journal.load()
        await self._write_journal()
        unconfirmed, requeued = await self.store.recover(
            now,
            resend_categories=resend_categories(cfg),
            bound_until=now + timedelta(seconds=cfg.sending.failover_wait_seconds),
            send_within=UNKNOWN_SEND_SECONDS,
        )
        # After recover: it moves the counts of parts a crash left in flight.
        self._send_log = await self.store.send_log(now - timedelta(seconds=DAY))
        if unconfirmed or requeued:
            log.warning("dispatch.recovered", unconfirmed=unconfirmed, requeued=requeued)
        for worker in self._workers.values():
            self._attach(worker)
        for rec in await self.store.unprocessed_inbound():
            await self.inbound.process(rec)
        await self._announce_modems()
        for worker in self._workers.values():
            worker.start()
        self._sweep_task = asyncio.create_task(self._sweep_loop(), name="gateway-sweep")
        if self.journal.pending:
            self._start_journal_writer()
        self._started = True
        log.info("gateway.started", modems=len(self._workers), queued=self.queue_depth())

    def _attach(self, worker: ModemWorker) -> None:
        modem = worker.modem

        def state_changed(state: ModemState, reason: str) -> None:
            # Any modem's state changes who may take sticky or bound messages: wake all.
            self.wake_all()

        async def inbound(sms: InboundSms) -> None:
            await self.inbound.on_inbound(modem, sms)

        async def report(rep: StatusReport) -> None:
            # A report may overtake the commit of its part's `sent`: match after it.
            await worker.sends_recorded(REPORT_WAITS_FOR_SEND_SECONDS)
            await self.inbound.on_report(modem, rep)

        modem.on_state_change(state_changed)
        modem.set_inbound_handler(inbound)
        modem.set_report_handler(report)

    async def stop(self, *, drain_timeout: float = 8.0) -> None:
        """Stop taking work: in-flight sends finish (up to ``drain_timeout``), the rest waits."""
        await asyncio.gather(*(w.stop(drain_timeout) for w in self._workers.values()))
        for task in (self._sweep_task, self._journal_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._sweep_task = self._journal_task = None
        self._started = False
        log.info("gateway.stopped", queued=self.queue_depth())

    # -- submit -----------------------------------------------------------------------

    def _max_parts(self) -> int | None:
        caps = [
            min(v for v in (lim.max_per_minute, lim.max_per_hour, lim.max_per_day) if v is not None)
            for lim in (w.config.limits for w in self._workers.values())
            if any(v is not None for v in (lim.max_per_minute, lim.max_per_hour, lim.max_per_day))
        ]
        unlimited = len(caps) < len(self._workers)
        return None if unlimited or not caps else max(caps)

    def _prepare(
        self,
        req: SubmitRequest,
        key: str | None,
        *,
        exempt: bool = False,
    ) -> NewMessage:
        if key is not None and (not key or len(key) > 255):
            raise ValidationError("Idempotency-Key", "must be 1 to 255 characters")
        item = prepare(
            req,
            self._config,
            self.clock.now(),
            modems=self.modem_names(),
            pools=self.pool_names(),
            idempotency_key=key,
            max_parts=self._max_parts(),
            optout_exempt=exempt,
        )
        scope = self.optout_scope(item.recipient)
        if not exempt and key is None and scope is not None and scope.covers(item.category):
            raise OptedOut(item.recipient)
        return item

    async def submit(
        self, req: SubmitRequest, *, idempotency_key: str | None = None
    ) -> SubmitResult:
        """Validate, encode and store one message; returns after the commit."""
        item = self._prepare(req, idempotency_key)
        [outcome] = await self.store.insert_messages([item])
        result = self._result(outcome, item)
        if isinstance(result, GatewayError):
            raise result
        return result

    async def submit_batch(
        self, reqs: Sequence[SubmitRequest]
    ) -> list[SubmitResult | GatewayError]:
        """Many submits in one commit; each gets its own result or error."""
        out: list[SubmitResult | GatewayError | None] = []
        items: list[NewMessage] = []
        for req in reqs:
            try:
                items.append(self._prepare(req, None))
                out.append(None)
            except GatewayError as exc:
                out.append(exc)
        outcomes = iter(await self.store.insert_messages(items))
        its = iter(items)
        return [
            slot if slot is not None else self._result(next(outcomes), next(its)) for slot in out
        ]

    def _result(
        self, outcome: Inserted | Exception, item: NewMessage
    ) -> SubmitResult | GatewayError:
        if isinstance(outcome, Inserted):
            self._note_expiry(item)
            if not outcome.duplicate:
                self._queued(outcome.message)
            return SubmitResult.of(outcome.message, duplicate=outcome.duplicate)
        if isinstance(outcome, IdempotencyKeyReused):
            return IdempotencyConflict(outcome.key)
        if isinstance(outcome, RecipientOptedOut):
            return OptedOut(outcome.number)
        raise outcome

    def _note_expiry(self, item: NewMessage) -> None:
        if item.expires_at is not None and (
            self._sweep_next is None or item.expires_at < self._sweep_next
        ):
            self._wake_sweep()

    def _wake_sweep(self) -> None:
        self.sweep_idle.clear()
        self._sweep_wake.set()

    async def _auto_reply(self, number: str, text: str, modem: str, exempt: bool) -> None:
        req = SubmitRequest(to=number, text=text, modem=modem if modem in self._workers else None)
        try:
            item = self._prepare(req, None, exempt=exempt)
        except GatewayError as exc:
            log.warning("autoreply.refused", number=number, error=exc.message)
            return
        [outcome] = await self.store.insert_messages([item])
        if not isinstance(outcome, Inserted):
            log.warning("autoreply.refused", number=number, error=str(outcome))
        elif not outcome.duplicate:
            self._queued(outcome.message)

    def _queued(self, msg: MessageRecord) -> None:
        self.observers.emit(MessageQueued(msg.id, msg.category, msg.segments, msg.created_at))

    def _status_changed(
        self, message_ids: Sequence[str], status: MessageStatus, now: datetime
    ) -> None:
        for message_id in message_ids:
            self.observers.emit(MessageStatusChanged(message_id, status, None, now))

    # -- reading and changing messages --------------------------------------------------

    async def get_message(self, message_id: str) -> MessageView:
        """One message with parts and history (``NotFound``)."""
        msg = await self.store.get_message(message_id)
        if msg is None:
            raise NotFound("message", message_id)
        return MessageView.of(msg)

    async def list_messages(
        self,
        *,
        status: MessageStatus | None = None,
        to: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[MessageView]:
        """Newest first, filtered."""
        recipient = (
            normalise_number(to, self._config.sending.default_region) if to is not None else None
        )
        rows = await self.store.list_messages(
            status=status,
            recipient=recipient,
            since=since,
            limit=_limit(limit),
            before_seq=_cursor(cursor),
        )
        return Page.of([MessageView.of(m) for m in rows], _limit(limit))

    async def cancel(self, message_id: str, *, reason: str = "cancelled") -> MessageView:
        """Cancel a queued message (``NotFound`` / ``NotCancellable``); ``reason`` is its
        error code (``superseded`` when a newer update of the same order replaced it)."""
        try:
            msg = await self.store.cancel_message(message_id, self.clock.now(), reason=reason)
        except WrongState as exc:
            if exc.status == "missing":
                raise NotFound("message", message_id) from exc
            raise NotCancellable(message_id, exc.status) from exc
        self._status_changed([msg.id], MessageStatus.CANCELLED, msg.updated_at)
        return MessageView.of(msg)

    async def list_inbound(
        self, *, limit: int = 50, cursor: str | None = None
    ) -> Page[InboundView]:
        """Received messages, newest first (incomplete ones once shown)."""
        rows = await self.store.list_inbound(limit=_limit(limit), before_seq=_cursor(cursor))
        return Page.of([InboundView.of(r) for r in rows], _limit(limit))

    # -- opt-outs ---------------------------------------------------------------------

    async def list_optouts(self, *, limit: int = 50, cursor: str | None = None) -> Page[OptOutView]:
        """The opt-out list, newest first."""
        rows = await self.store.list_optouts(limit=_limit(limit), before_seq=_cursor(cursor))
        return Page.of([OptOutView.of(r) for r in rows], _limit(limit))

    async def add_optout(
        self, number: str, *, scope: OptOutScope = OptOutScope.ALL, source: str = "api"
    ) -> OptOutView:
        """Add ``number``; queued messages its scope covers are cancelled in the same commit."""
        e164 = normalise_number(number, self._config.sending.default_region, field="number")
        now = self.clock.now()
        result = await self.store.add_optout(e164, OptOutScope(scope), source, now)
        self._optouts[e164] = result.record.scope
        self.observers.emit(OptOutChanged(result.record.scope, source, True, now))
        self._status_changed(result.cancelled, MessageStatus.CANCELLED, now)
        log.info("optout.added", number=e164, scope=str(scope), cancelled=len(result.cancelled))
        return OptOutView.of(result.record)

    async def remove_optout(self, number: str) -> None:
        """Take ``number`` off the list (``NotFound``)."""
        e164 = normalise_number(number, self._config.sending.default_region, field="number")
        now = self.clock.now()
        if not await self.store.remove_optout(e164, now):
            raise NotFound("opt-out", e164)
        self._optouts.pop(e164, None)
        self.observers.emit(OptOutChanged(None, "api", False, now))

    # -- modems -----------------------------------------------------------------------

    def modem_status(self) -> list[ModemStatusView]:
        """State, signal, operator, counters and limiter headroom of every modem."""
        now = self.clock.now()
        views = []
        for w in self._workers.values():
            m = w.modem
            ident = m.identity
            limiter = self.limiter(ident, w.config.limits) if ident is not None else None
            headroom = limiter.headroom(now) if limiter else Limiter(w.config.limits).headroom(now)
            views.append(
                ModemStatusView(
                    name=m.name,
                    state=str(m.state),
                    state_reason=m.state_reason,
                    sim=ident,
                    pool=w.config.pool,
                    paused=w.paused,
                    out_of_service=w.out_of_service is not None,
                    signal_dbm=m.info.signal_dbm,
                    operator=m.info.operator,
                    registration=m.info.registration,
                    sent=w.counters.sent,
                    failed=w.counters.failed,
                    headroom=headroom,
                    queue_depth=self.queue_depth(),
                )
            )
        return views

    async def add_modem(self, modem: ModemPort, config: ModemConfig) -> None:
        """Attach a modem found at run time (gatewayd.fleet.discovery); it takes work at once.

        Call before ``modem.start()`` so that no inbound SMS arrives before its handler.
        """
        if modem.name in self._workers:
            raise ValueError(f"modem {modem.name!r} is already attached")
        worker = ModemWorker(self, modem, config)
        self._workers[modem.name] = worker
        self._attach(worker)
        if self._started:
            worker.start()
        log.info("gateway.modem_added", modem=modem.name, pool=config.pool)
        await self._announce_modems()

    async def remove_modem(self, name: str, *, drain_timeout: float = 0.0) -> None:
        """Detach a modem whose port vanished: its worker hands its work back and exits."""
        worker = self._workers.pop(name, None)
        if worker is None:
            return
        await worker.stop(drain_timeout)
        self.wake_all()
        await self._announce_modems()
        log.info("gateway.modem_removed", modem=name)

    async def _announce_modems(self) -> None:
        # Several nodes on one database: a submit to any node may name this node's modems.
        try:
            async with self._announce_lock:
                await self.store.announce_modems(
                    {name: w.config.pool for name, w in self._workers.items()}
                )
        except Exception:
            log.exception("gateway.announce_failed")

    def modem_names(self) -> frozenset[str]:
        """Modems a submit may name: this node's, and those of nodes sharing its database."""
        return frozenset(self._workers) | frozenset(self.store.modems_elsewhere())

    def pool_names(self) -> frozenset[str]:
        """Pools a submit may name: this node's, and those of nodes sharing its database."""
        mine = frozenset(w.config.pool for w in self._workers.values())
        return self._config.pools | mine | frozenset(self.store.modems_elsewhere().values())

    def _worker(self, name: str) -> ModemWorker:
        worker = self._workers.get(name)
        if worker is None:
            raise NotFound("modem", name)
        return worker

    async def pause(self, modem: str) -> None:
        """Stop giving this modem work (the part in flight finishes)."""
        self._worker(modem).paused = True
        self.wake_all()

    async def resume(self, modem: str) -> None:
        """Give this modem work again (and put its SIM back in service)."""
        self._worker(modem).resume()
        self.wake_all()

    async def readiness(self) -> tuple[bool, list[str]]:
        """Ready when the store takes writes and at least one modem can send."""
        reasons: list[str] = []
        try:
            async with asyncio.timeout(2.0):
                await self.store.ping()
        except Exception as exc:
            reasons.append(f"store not writable: {exc}")
        if not any(w.usable() for w in self._workers.values()):
            reasons.append("no modem ready")
        return not reasons, reasons

    def queue_depth(self) -> int:
        """Messages queued or being sent (a counter, never a scan)."""
        return self.store.queue_depth()

    def reload(self, config: GatewayConfig) -> list[str]:
        """Apply limits, routing, keywords, sending and webhook settings; list what changed."""
        old, changed = self._config, []
        for section in ("routing", "sending", "keywords", "webhooks"):
            if getattr(old, section) != getattr(config, section):
                changed.append(section)
        new_modems = {m.name: m for m in config.modems}
        for name, worker in self._workers.items():
            mc = new_modems.get(name)
            if mc is not None and mc != worker.config:
                worker.config = mc
                changed.append(f"modems.{name}")
        if set(new_modems) != set(self._workers):
            changed.append("modems (added or removed: takes effect at restart)")
        self._config = config
        self.store.set_webhook_url(config.webhooks.url)
        self.inbound.reconfigure(config)
        self.wake_all()
        self._wake_sweep()
        return changed

    # -- sweeps -----------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        while True:
            self._sweep_wake.clear()
            try:
                until = await self.sweep()
            except Exception:
                log.exception("gateway.sweep_failed")
                until = self.clock.now() + timedelta(seconds=60)
            self._sweep_next = until
            sleeper = asyncio.ensure_future(self.clock.sleep_until(until))
            waker = asyncio.ensure_future(self._sweep_wake.wait())
            self.sweep_idle.set()
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self.sweep_idle.clear()
                for fut in (sleeper, waker):
                    fut.cancel()

    async def sweep(self) -> datetime:
        """Expire, time out reports, show incomplete inbound; returns when to sweep next."""
        now = self.clock.now()
        s = self._config.sending
        report_timeout = timedelta(seconds=s.report_timeout_seconds)
        incomplete_after = timedelta(seconds=s.inbound_incomplete_after_seconds)
        expired = await self.store.expire_due(now)
        if expired:
            log.info("messages.expired", count=len(expired))
            self._status_changed(expired, MessageStatus.EXPIRED, now)
        timed_out = await self.store.timeout_reports(now, sent_before=now - report_timeout)
        if timed_out:
            log.info("dlr.report_timeout", parts=timed_out)
        await self.store.mark_incomplete(now, first_before=now - incomplete_after)
        await self.store.prune_send_log(now - timedelta(seconds=DAY))
        cap = min(SWEEP_MAX_SECONDS, s.report_timeout_seconds, s.inbound_incomplete_after_seconds)
        due = [now + timedelta(seconds=max(cap, 1.0))]
        if (t := await self.store.next_expiry()) is not None:
            due.append(t)
        if (t := await self.store.next_report_deadline()) is not None:
            due.append(t + report_timeout)
        if (t := await self.store.next_incomplete()) is not None:
            due.append(t + incomplete_after)
        return max(min(due), now + timedelta(milliseconds=1))


def _limit(limit: int) -> int:
    if not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise ValidationError("limit", "must be between 1 and 1000")
    return limit


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        return parse_cursor(cursor)
    except ValueError as exc:
        raise ValidationError("cursor", str(exc)) from exc
