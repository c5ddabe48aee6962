"""One worker per modem: take the next message the store routes to it, send its parts.

The rules (DESIGN: data path, Decisions):

* **Waking.** A worker never polls. It asks the store for its next message, and if none is
  due it sleeps on the clock until the earliest ``send_at`` / retry / failover time, or until
  a commit or a modem state change wakes it (an ``asyncio.Event`` per worker). A five-minute
  re-check is only a safety net for what nothing announces.
* **Limits.** All parts of a message are reserved in the SIM's :class:`Limiter` before part 1
  goes; a part is counted (in memory and in the store's send log, in the same transaction
  that marks it ``sending``) just before ``send_pdu`` writes its Ctrl-Z, and its count moves
  to the time ``send_pdu`` answered (the SMS left in between: windows stay whole however
  long the modem takes). A part whose outcome is unknown (or that a crash left ``sending``)
  counts at the latest it may have left: ``UNKNOWN_SEND_SECONDS`` after its Ctrl-Z, or
  later. A count is never earlier than the send it stands for, so no window overflows.
* **Routing.** The store picks by priority, ``send_at``, age, among messages this modem may
  take: its name or pool, no explicit other modem, not sticky to another *ready* SIM
  (unless it names this modem: a named modem wins over stickiness, e.g. a keyword's reply), not
  bound to another *ready* SIM mid-message, and not the SIM a temporary error came from when
  another ready modem could take it (a message naming its modem stays with it).
* **Multipart.** All parts go through one SIM. If it fails mid-message, the message stays
  bound to it for ``failover_wait_seconds``; then another SIM resends the whole message with
  a new concatenation reference and the message records a possible stray part.
* **+CMS ERROR** (classified by ``drivers.at.classify_cms``): temporary -> back to the queue
  with exponential backoff (``retry_base_seconds`` doubling up to ``retry_max_seconds``,
  failing after ``retry_max_attempts``), preferring another SIM; permanent -> the message
  fails with the code and its meaning; SIM fault -> the SIM goes out of service (until
  :meth:`ModemWorker.resume` or a different SIM appears in the modem), its message goes back
  to the queue at once, an alarm is logged.
* **Modem gone** (``ModemNotReady``, ``PortGone``, an ``AtTimeout`` before Ctrl-Z): the part
  never left, so the message goes back to the queue without counting an attempt.
* **Unknown outcome.** A part whose Ctrl-Z was written but whose answer never came
  (``SendOutcomeUnknown``), like a part a crash left ``sending``, follows
  ``sending.unknown_outcome_<category>``: ``at_most_once`` (default) marks it
  ``unconfirmed`` and never resends it (the message ends ``unconfirmed`` instead of
  ``sent``); ``at_least_once`` puts it back in the queue (the recipient may get it twice).
* **Opt-out.** Before each part, and again at the ``> `` prompt (``before_submit``), the
  in-memory opt-out list is checked; an opted-out message is cancelled (``opted_out``).
* **Store unreachable.** A ``+CMGS`` answer the store cannot take goes to the outcome
  journal and the worker drops the message; a message it cannot hand back is handed back
  first thing once the store answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from drivers.at import AtError, AtTimeout, CmsClass, CmsError, PortGone, classify_cms
from drivers.clock import Clock
from drivers.modem import ModemNotReady, ModemState, SendAborted, SendOutcomeUnknown
from gatewayd.config.model import (
    GatewayConfig,
    Limits,
    ModemConfig,
    UnknownOutcomeRule,
)
from gatewayd.core.journal import SentOutcome
from gatewayd.core.limiter import Limiter
from gatewayd.core.observe import MessageStatusChanged, Observers, PartSent, SendFailed
from gatewayd.core.ports import ModemPort
from gatewayd.store import (
    GONE_OUT,
    Category,
    ClaimLost,
    MessageRecord,
    MessageStatus,
    RecipientOptedOut,
    RouteQuery,
    Store,
    StoreError,
    WrongState,
)
from gatewayd.store.records import PENDING_STATUSES

log = structlog.get_logger(__name__)

# Safety net only: every real wake-up comes from a commit, a state change or a due time.
IDLE_RECHECK_SECONDS = 300.0
# The longest a modem takes to answer +CMGS (Quectel EC25: 120 s). A part whose outcome is
# unknown may leave its SIM until then (a lost link or a crash does not stop the modem), so
# it counts against the limits then: a count must never be earlier than the send it stands for.
UNKNOWN_SEND_SECONDS = 120.0
# After the modem failed a send without sending, give it this long before the next try
# (a state change wakes the worker sooner).
MODEM_COOLDOWN_SECONDS = 5.0


class DispatchContext(Protocol):
    """What a worker needs from the gateway around it."""

    store: Store
    clock: Clock
    observers: Observers

    @property
    def config(self) -> GatewayConfig: ...

    def limiter(self, identity: str, limits: Limits) -> Limiter: ...

    async def reload_limiter(self, identity: str, limits: Limits) -> Limiter: ...

    def may_send(self, msg: MessageRecord) -> bool: ...

    def ready_identities(self, pool: str | None = None) -> frozenset[str]: ...

    def wake_all(self) -> None: ...

    def reencode(self, msg: MessageRecord) -> list[tuple[str, int]]: ...

    async def keep_outcome(self, outcome: SentOutcome) -> None: ...


@dataclass
class Counters:
    """What one worker did since start."""

    sent: int = 0
    failed: int = 0


class ModemWorker:
    """Sends one modem's share of the queue (see the module docstring)."""

    def __init__(self, ctx: DispatchContext, modem: ModemPort, config: ModemConfig) -> None:
        self._ctx = ctx
        self._modem = modem
        self.config = config
        self.paused = False
        self.out_of_service: str | None = None
        self._oos_identity: str | None = None
        self.counters = Counters()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # Set while the worker waits for work, a slot or a due time (observability, tests).
        self.idle = asyncio.Event()
        # Clear from a part's AT+CMGS until its `sent` is committed: a status report can
        # overtake that commit (the URC is read right after +CMGS), so report matching
        # waits for it (see :meth:`sends_recorded`).
        self._recorded = asyncio.Event()
        self._recorded.set()
        self._cooldown_until: datetime | None = None
        self._last_cms: int | None = None
        # Claimed messages this worker could not hand back (the store was unreachable):
        # handed back first thing once it answers, not left claimed until the lease ends.
        self._unreturned: dict[str, tuple[MessageRecord, str]] = {}
        self._log = log.bind(modem=modem.name)

    async def sends_recorded(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait (at most ``timeout`` seconds) until no part's `sent` is still uncommitted."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._recorded.wait()

    @property
    def modem(self) -> ModemPort:
        """The modem this worker drives."""
        return self._modem

    @property
    def name(self) -> str:
        """The modem's name."""
        return self._modem.name

    def usable(self) -> bool:
        """Ready to send: modem ready with a known SIM, not paused, SIM in service."""
        identity = self._modem.identity
        if identity is not None and self._oos_identity not in (None, identity):
            # A different SIM is in the modem now: the fault was the old SIM's.
            self.out_of_service = self._oos_identity = None
        return (
            self._modem.state is ModemState.READY
            and identity is not None
            and not self.paused
            and self.out_of_service is None
            and not self._stopping
        )

    def wake(self) -> None:
        """Look at the queue now."""
        self.idle.clear()
        self._wake.set()

    def start(self) -> None:
        """Start the worker task."""
        self._task = asyncio.create_task(self._run(), name=f"dispatch-{self.name}")

    async def stop(self, drain_timeout: float) -> None:
        """Finish the part in flight (up to ``drain_timeout`` s), hand the rest back, exit."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            async with asyncio.timeout(drain_timeout):
                await asyncio.shield(task)
        except TimeoutError:
            self._log.warning("dispatch.drain_timeout", seconds=drain_timeout)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def resume(self) -> None:
        """Unpause and put the SIM back in service."""
        self.paused = False
        self.out_of_service = self._oos_identity = None
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._step()
            except Exception:
                # A bug or a store hiccup must not kill the worker: log, pause, go on.
                self._log.exception("dispatch.step_failed")
                await self._wait(self._ctx.clock.now() + timedelta(seconds=MODEM_COOLDOWN_SECONDS))

    async def _step(self) -> None:
        clock = self._ctx.clock
        self._wake.clear()
        for unreturned, held_by in list(self._unreturned.values()):
            with contextlib.suppress(ClaimLost, WrongState):  # another node has it now
                await self._hand_back(unreturned, held_by, "store unreachable", count=False)
            del self._unreturned[unreturned.id]
        now = clock.now()
        if self._cooldown_until is not None and now < self._cooldown_until:
            await self._wait(self._cooldown_until)
            return
        self._cooldown_until = None
        identity = self._modem.identity
        if not self.usable() or identity is None:
            await self._wait(None)
            return
        limiter = self._ctx.limiter(identity, self.config.limits)
        route = RouteQuery(
            identity=identity,
            modem=self.name,
            pool=self.config.pool,
            others_ready=self._ctx.ready_identities() - {identity},
            others_ready_in_pool=self._ctx.ready_identities(self.config.pool) - {identity},
            max_parts=limiter.capacity(),
        )
        work = await self._ctx.store.next_work(
            route, now, sticky=self._ctx.config.sending.sticky_recipients
        )
        if work.took_sim:
            # Another node may have sent on this SIM since this node loaded its log.
            limiter = await self._ctx.reload_limiter(identity, self.config.limits)
        if work.message is None:
            await self._wait(work.wake_at)
            return
        # Marketing leaves the reserved share of every window to otp/alert messages.
        reserve = (
            self._ctx.config.sending.urgent_reserved_share
            if work.message.category is Category.MARKETING
            else 0.0
        )
        slot = limiter.earliest(work.message.segments, now, reserve=reserve)
        if slot is None:  # pragma: no cover - the store filters by capacity
            return
        if slot > now:
            await self._wait(slot)
            return
        msg = await self._ctx.store.claim(work.message.id, identity, now)
        if msg is None:
            return
        try:
            try:
                await self._send(msg, identity, limiter)
            finally:
                self._recorded.set()
        except ClaimLost as exc:
            # Another node took the message over, or this node lost the database
            # (PostgreSQL): the message is no longer this worker's to write about.
            self._log.warning("dispatch.claim_lost", message=msg.id, reason=exc.why)
        except Exception:
            # A bug or a store hiccup mid-message: give the message back (counted, with
            # backoff) rather than leave it claimed until the next restart.
            self._log.exception("dispatch.send_failed", message=msg.id)
            self._unreturned[msg.id] = (msg, identity)
            await self._hand_back(
                msg,
                identity,
                "internal error",
                count=True,
                delay=self._ctx.config.sending.retry_base_seconds,
            )
            del self._unreturned[msg.id]

    async def _wait(self, until: datetime | None) -> None:
        if self._wake.is_set():
            # Woken while it looked (a commit after its query): look again, never showing
            # `idle` meanwhile (a test clock would otherwise jump to the stale due time).
            return
        clock = self._ctx.clock
        if until is None:
            until = clock.now() + timedelta(seconds=IDLE_RECHECK_SECONDS)
        sleeper = asyncio.ensure_future(clock.sleep_until(until))
        waker = asyncio.ensure_future(self._wake.wait())
        self.idle.set()
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.idle.clear()
            for fut in (sleeper, waker):
                fut.cancel()

    async def _send(self, msg: MessageRecord, identity: str, limiter: Limiter) -> None:
        store, clock = self._ctx.store, self._ctx.clock
        mlog = self._log.bind(message=msg.id, sim=identity)
        previous = msg.identity
        if previous is not None and previous != identity:
            # Bound to a SIM that did not come back in time: resend the whole message here.
            parts = self._ctx.reencode(msg)
            msg = await store.replace_parts(msg.id, parts, clock.now(), f"failover from {previous}")
            mlog.warning("dispatch.failover_resend", previous_sim=previous)
        for part in msg.parts:
            if part.status in GONE_OUT:
                continue
            if self._expired(msg):
                await self._expire(msg, identity, mlog)
                return
            if not self._ctx.may_send(msg):
                await self._cancel_opted_out(msg, mlog)
                return
            gap = limiter.gap_ready()
            if gap > clock.now():
                self.idle.set()
                try:
                    await clock.sleep_until(gap)
                finally:
                    self.idle.clear()
            if not self.usable():
                await self._hand_back(msg, identity, "modem no longer usable", count=False)
                return
            counted = clock.now()
            try:
                await store.part_sending(msg.id, part.seq, identity, self.name, counted)
            except RecipientOptedOut:
                # Committed on another node (PostgreSQL checks it here, under the number's lock).
                await self._cancel_opted_out(msg, mlog)
                return
            limiter.record(counted)
            try:
                self._recorded.clear()
                try:
                    mr = await self._modem.send_pdu(
                        part.pdu, part.tpdu_length, before_submit=self._checker(msg)
                    )
                except Exception as exc:
                    self._send_failed(msg.id, exc)
                    raise
                finally:
                    answered = clock.now()
                    limiter.settle(counted, answered)
            except SendAborted:
                if self._expired(msg):
                    await self._expire(msg, identity, mlog)
                else:
                    await self._cancel_opted_out(msg, mlog)
                return
            except CmsError as exc:
                await self._cms_failure(msg, identity, exc, mlog)
                return
            except SendOutcomeUnknown as exc:
                left_by = unknown_left_by(limiter, counted, answered)
                if not await self._unknown_outcome(
                    msg, part.seq, identity, counted, left_by, exc.reason, mlog
                ):
                    return
                continue
            except AtTimeout as exc:
                if exc.written:
                    left_by = unknown_left_by(limiter, counted, answered)
                    if not await self._unknown_outcome(
                        msg, part.seq, identity, counted, left_by, str(exc), mlog
                    ):
                        return
                    continue
                self._cooldown()
                await self._temporary(msg, identity, "at_timeout", str(exc), mlog)
                return
            except (ModemNotReady, PortGone) as exc:
                # Nothing left the modem: not the message's fault, no attempt counted.
                mlog.warning("dispatch.modem_trouble", error=str(exc))
                self._cooldown()
                await self._hand_back(msg, identity, str(exc), count=False, avoid=True)
                return
            except AtError as exc:
                # Any other refusal (e.g. +CME ERROR): retried like a temporary +CMS ERROR.
                self._cooldown()
                await self._temporary(msg, identity, "at_error", exc.final or str(exc), mlog)
                return
            self._last_cms = None
            self.counters.sent += 1
            done = clock.now()
            epoch = store.claim_epoch(msg.id)
            try:
                status = await store.part_sent(msg.id, part.seq, mr, done, counted_at=counted)
            except StoreError:
                raise
            except Exception as exc:
                # The part left; the database did not take the answer. Keep it on disk and
                # drop the message until the store is back (no further part is started).
                await self._ctx.keep_outcome(
                    SentOutcome(msg.id, part.seq, mr, done, counted, epoch)
                )
                mlog.warning("dispatch.outcome_journaled", part=part.seq, mr=mr, error=repr(exc))
                return
            self._recorded.set()
            seconds = (done - counted).total_seconds()
            self._ctx.observers.emit(PartSent(msg.id, part.seq, self.name, identity, seconds, done))
            self._status(msg.id, status)
            mlog.info("sms.part_sent", part=part.seq, of=msg.segments, mr=mr, status=str(status))

    def _status(self, message_id: str, status: MessageStatus) -> None:
        if status not in PENDING_STATUSES:
            self._ctx.observers.emit(
                MessageStatusChanged(message_id, status, self.name, self._ctx.clock.now())
            )

    def _send_failed(self, message_id: str, exc: Exception) -> None:
        if isinstance(exc, SendAborted):
            return  # the opt-out check at the prompt: not a failure
        self._ctx.observers.emit(
            SendFailed(message_id, self.name, send_error_code(exc), self._ctx.clock.now())
        )

    def _checker(self, msg: MessageRecord) -> Callable[[], bool]:
        return lambda: self._ctx.may_send(msg) and not self._expired(msg)

    def _expired(self, msg: MessageRecord) -> bool:
        return msg.expires_at is not None and self._ctx.clock.now() >= msg.expires_at

    async def _expire(self, msg: MessageRecord, identity: str, mlog: structlog.BoundLogger) -> None:
        # Past expires_at at the last moment (an otp): never sent late. Handed back without
        # counting, then expired by the sweep's own query (no other worker takes it: the
        # queue skips expired rows).
        await self._hand_back(msg, identity, "expired", count=False)
        now = self._ctx.clock.now()
        for message_id in await self._ctx.store.expire_due(now):
            self._status(message_id, MessageStatus.EXPIRED)
        mlog.warning("dispatch.expired_before_send")

    async def _cancel_opted_out(self, msg: MessageRecord, mlog: structlog.BoundLogger) -> None:
        with contextlib.suppress(WrongState):
            await self._ctx.store.cancel_message(
                msg.id, self._ctx.clock.now(), reason="opted_out", allow_sending=True
            )
            self._status(msg.id, MessageStatus.CANCELLED)
        mlog.info("dispatch.cancelled_opted_out")

    async def _hand_back(
        self,
        msg: MessageRecord,
        identity: str,
        why: str,
        *,
        count: bool,
        delay: float = 0.0,
        avoid: bool = False,
        code: str | None = None,
    ) -> None:
        now = self._ctx.clock.now()
        sending = self._ctx.config.sending
        await self._ctx.store.requeue(
            msg.id,
            now,
            next_attempt_at=now + timedelta(seconds=delay),
            count_attempt=count,
            avoid_identity=identity if avoid else None,
            bound_until=now + timedelta(seconds=sending.failover_wait_seconds),
            error_code=code,
            error_text=why,
        )
        self._ctx.wake_all()

    def _cooldown(self) -> None:
        self._cooldown_until = self._ctx.clock.now() + timedelta(seconds=MODEM_COOLDOWN_SECONDS)

    async def _cms_failure(
        self, msg: MessageRecord, identity: str, exc: CmsError, mlog: structlog.BoundLogger
    ) -> None:
        kind = classify_cms(exc.code, repeated=exc.code is not None and exc.code == self._last_cms)
        self._last_cms = exc.code
        code = f"cms_{exc.code}" if exc.code is not None else "cms_unknown"
        meaning = exc.meaning or exc.text
        if kind is CmsClass.PERMANENT:
            self.counters.failed += 1
            status = await self._ctx.store.fail_message(
                msg.id, self._ctx.clock.now(), code=code, text=meaning
            )
            self._status(msg.id, status)
            mlog.warning("sms.failed", code=exc.code, meaning=meaning)
        elif kind is CmsClass.SIM_FAULT:
            self.out_of_service = f"+CMS ERROR {exc.code}: {meaning}"
            self._oos_identity = identity
            mlog.error("sim.out_of_service", alarm=True, code=exc.code, meaning=meaning)
            await self._hand_back(msg, identity, meaning, count=False, avoid=True, code=code)
        else:
            await self._temporary(msg, identity, code, meaning, mlog)

    async def _temporary(
        self,
        msg: MessageRecord,
        identity: str,
        code: str,
        meaning: str,
        mlog: structlog.BoundLogger,
    ) -> None:
        """Retry with exponential backoff (preferring another SIM), or fail at the limit."""
        sending = self._ctx.config.sending
        attempts = msg.attempts + 1
        if attempts >= sending.retry_max_attempts:
            self.counters.failed += 1
            status = await self._ctx.store.fail_message(
                msg.id,
                self._ctx.clock.now(),
                code=code,
                text=f"{meaning} (gave up after {attempts} attempts)",
            )
            self._status(msg.id, status)
            mlog.warning("sms.failed", code=code, meaning=meaning, attempts=attempts)
            return
        delay = min(sending.retry_base_seconds * 2 ** (attempts - 1), sending.retry_max_seconds)
        mlog.info("sms.retry", code=code, meaning=meaning, attempt=attempts, delay_s=delay)
        await self._hand_back(
            msg, identity, meaning, count=True, delay=delay, avoid=True, code=code
        )

    async def _unknown_outcome(
        self,
        msg: MessageRecord,
        seq: int,
        identity: str,
        counted: datetime,
        left_by: datetime,
        why: str,
        mlog: structlog.BoundLogger,
    ) -> bool:
        """Apply the unknown-outcome rule; ``True`` if the next part may follow."""
        rule = unknown_outcome_rule(self._ctx.config, msg.category)
        mlog.warning("sms.outcome_unknown", part=seq, reason=why, rule=str(rule))
        if rule is UnknownOutcomeRule.AT_MOST_ONCE:
            # The store's count moves as the limiter's did, so it holds after a restart too.
            status = await self._ctx.store.part_unconfirmed(
                msg.id, seq, self._ctx.clock.now(), why, counted_at=counted, left_by=left_by
            )
            self._status(msg.id, status)
            if self.usable():
                return True
            await self._hand_back(msg, identity, why, count=False)
            return False
        await self._hand_back(msg, identity, why, count=True)
        return False


def send_error_code(exc: Exception) -> str:
    """The metric label of a failed send: ``cms_<n>``, ``at_timeout``, ``modem_gone``..."""
    if isinstance(exc, CmsError):
        return f"cms_{exc.code}" if exc.code is not None else "cms_unknown"
    if isinstance(exc, SendOutcomeUnknown):
        return "outcome_unknown"
    if isinstance(exc, AtTimeout):
        return "at_timeout"
    if isinstance(exc, ModemNotReady | PortGone):
        return "modem_gone"
    if isinstance(exc, AtError):
        return "at_error"
    return "internal"


def unknown_left_by(limiter: Limiter, counted: datetime, answered: datetime) -> datetime:
    """Move the count of a part whose outcome is unknown to the latest it may have left."""
    left_by = max(answered, counted + timedelta(seconds=UNKNOWN_SEND_SECONDS))
    limiter.hold(answered, left_by)
    return left_by


def unknown_outcome_rule(config: GatewayConfig, category: Category) -> UnknownOutcomeRule:
    """The configured rule for a part of ``category`` whose outcome is unknown."""
    if category is Category.MARKETING:
        return config.sending.unknown_outcome_marketing
    return config.sending.unknown_outcome_transactional


def resend_categories(config: GatewayConfig) -> frozenset[Category]:
    """Categories whose unknown-outcome parts go back to the queue (at-least-once)."""
    return frozenset(
        c for c in Category if unknown_outcome_rule(config, c) is UnknownOutcomeRule.AT_LEAST_ONCE
    )
