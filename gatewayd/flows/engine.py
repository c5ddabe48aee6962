"""The flow engine: events -> enrolments -> scheduled steps -> messages through the gateway.

State lives in the store, never in memory: an enrolment is (flow, step index, due time or
awaited event), so a restart resumes each one where it was. One task runs due steps and then
sleeps on the clock until the next due time or a wake-up (a new event or a click). Events,
clicks and due steps are handled one at a time under one lock, so a step never races the
event that exits its enrolment.

Rules enforced at each send (the template cannot skip them): consent per category, opt-outs
(scope ``all`` blocks everything and ``marketing`` blocks marketing; a refused marketing step
ends the enrolment), quiet hours in the recipient's zones and per-customer caps resolved to a
``send_at``, brand and opt-out clause added, URLs replaced by tracked short links.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog

from drivers.clock import Clock
from gatewayd.config import FlowsConfig
from gatewayd.core import (
    Gateway,
    GatewayError,
    IdempotencyConflict,
    OptedOut,
    OptOutScope,
    SubmitRequest,
)
from gatewayd.core.keywords import fold
from gatewayd.core.observe import GatewayEvent, InboundReceived
from gatewayd.customers import Preferences
from gatewayd.customers.links import PAGE_LINK_DAYS, sign, verify
from gatewayd.customers.preferences import preferences_from_row
from gatewayd.flows.events import Event
from gatewayd.flows.experiments import HOLDOUT, choose_template, in_holdout
from gatewayd.flows.links import new_code, not_a_click, shorten
from gatewayd.flows.load import EXIT
from gatewayd.flows.metrics import FlowMetrics, build_metrics
from gatewayd.flows.model import Branch, Condition, Exit, Flow, FlowSet, Scope, Send, Wait, WaitFor
from gatewayd.flows.segments import Facts
from gatewayd.flows.templates import Renderer, compose, order_context
from gatewayd.flows.timing import WEEK, Caps, QuietHours, resolve_send_at, zones_for
from gatewayd.store import Category
from gatewayd.store.flows_base import (
    CustomerRecord,
    EnrolmentRecord,
    EnrolmentStatus,
    FlowStore,
    NewEvent,
    NewSend,
    TimelineEntry,
)

log = structlog.get_logger(__name__)

IDLE_SECONDS = 3600.0  # the loop looks again at least this often
RECOVER_EVERY = timedelta(minutes=5)  # unprocessed events (failed, or a dead node's) retried
BATCH = 100  # due enrolments taken per pass
PAGE_SECRET = "preferences_page"  # the name of the key that signs preferences links
RETENTION_EVERY_SECONDS = 3600.0  # how often old texts are purged
INBOUND_SETTLE_SECONDS = 10.0  # settle_inbound gives up (TimeoutError) after this long
_MAX_HOPS = 100  # steps run for one enrolment in one pass (a branch loop cannot spin)


@dataclass(frozen=True)
class EventOutcome:
    """What posting an event did."""

    event_id: str
    duplicate: bool
    enrolled: tuple[str, ...] = ()  # flows started
    exited: int = 0  # enrolments ended by this event
    resumed: int = 0  # enrolments that were waiting for it

    def to_json(self) -> dict[str, Any]:
        """The API's answer."""
        return {
            "event_id": self.event_id,
            "duplicate": self.duplicate,
            "enrolled": list(self.enrolled),
            "exited": self.exited,
            "resumed": self.resumed,
        }


class FlowEngine:
    """Runs the flows of ``flows`` over ``gateway`` (see the module docstring)."""

    def __init__(
        self,
        gateway: Gateway,
        store: FlowStore,
        flows: FlowSet,
        settings: FlowsConfig,
        *,
        clock: Clock,
    ) -> None:
        self.gateway = gateway
        self.store = store
        self.flows = flows
        self.settings = settings
        self.clock = clock
        self._renderer = Renderer(flows.default_locale)
        self._quiet = QuietHours.parse(settings.quiet_start, settings.quiet_end)
        self._caps = Caps(
            settings.marketing_per_day,
            settings.marketing_per_week,
            timedelta(seconds=settings.min_gap_seconds),
        )
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inbound_tasks: set[asyncio.Task[None]] = set()
        self._retention: asyncio.Task[None] | None = None
        # flow name -> the flows one of whose steps supersedes it
        self._superseders: dict[str, list[Flow]] = {}
        for f in flows.flows:
            for s in f.steps:
                if isinstance(s.action, Send):
                    for name in s.action.supersedes:
                        self._superseders.setdefault(name, []).append(f)
        # The longest survey window: how far back a reply may answer a question.
        self._max_window = max(
            (
                s.action.survey.window_seconds
                for f in flows.flows
                for s in f.steps
                if isinstance(s.action, Send) and s.action.survey is not None
            ),
            default=0.0,
        )
        self._unsubscribe: Callable[[], None] | None = None

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the task that runs due steps."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="flows-engine")
            if self.settings.retention_days is not None:
                self._retention = asyncio.create_task(self._retention_loop(), name="retention")
            self.listen()
            log.info("flows.started", flows=len(self.flows.flows))

    async def stop(self) -> None:
        """Stop the task (a step in progress is cancelled; it reruns idempotently)."""
        task, self._task = self._task, None
        retention, self._retention = self._retention, None
        if retention is not None:
            retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retention
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for pending in list(self._inbound_tasks):
            pending.cancel()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Make the loop look for due steps now."""
        self._wake.set()

    async def recover(self) -> int:
        """Process the events a crash left stored but unprocessed; returns how many."""
        async with self._lock:
            events = await self.store.unprocessed_events()
            for stored in events:
                await self._ingest(stored, None)
        if events:
            log.warning("flows.recovered_events", count=len(events))
        return len(events)

    async def _loop(self) -> None:
        recovered_at: datetime | None = None
        while True:
            self._wake.clear()
            now = self.clock.now()
            # Not only at start: on PostgreSQL another node may die holding events (their
            # lease runs out), and an event that failed once is tried again.
            if recovered_at is None or now - recovered_at >= RECOVER_EVERY:
                recovered_at = now
                try:
                    await self.recover()
                except Exception:
                    log.exception("flows.recover_failed")
            try:
                until = await self.run_due()
            except Exception:
                log.exception("flows.run_failed")
                until = None
            now = self.clock.now()
            cap = min(now + timedelta(seconds=IDLE_SECONDS), recovered_at + RECOVER_EVERY)
            until = min(until, cap) if until is not None else cap
            sleeper = asyncio.ensure_future(self.clock.sleep_until(until))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for fut in (sleeper, waker):
                    fut.cancel()

    # -- inbound SMS: preference keywords -----------------------------------------------

    def listen(self) -> None:
        """Handle the gateway's inbound SMS (preference keywords, survey answers)."""
        if self._unsubscribe is None:
            self._unsubscribe = self.gateway.observers.subscribe(self._observe)

    def _observe(self, event: GatewayEvent) -> None:
        # Observers run on the loop and must not block: the work goes to a task.
        if isinstance(event, InboundReceived) and event.complete:
            task = asyncio.create_task(self._inbound_task(event.inbound_id))
            self._inbound_tasks.add(task)
            task.add_done_callback(self._inbound_tasks.discard)

    async def _inbound_task(self, inbound_id: str) -> None:
        try:
            await self.handle_inbound(inbound_id)
        except Exception:
            log.exception("customers.inbound_failed", inbound=inbound_id)

    async def settle_inbound(self) -> None:
        """Until the inbound SMS seen so far are handled (tests and shutdown)."""
        async with asyncio.timeout(INBOUND_SETTLE_SECONDS):
            while self._inbound_tasks:
                await asyncio.gather(*self._inbound_tasks, return_exceptions=True)

    async def handle_inbound(self, inbound_id: str) -> str | None:
        """A preference keyword (``MENOS``, ``ONLY ORDERS``, ...) from a known customer sets
        their frequency and gets its confirmation; returns the frequency set, if any."""
        found = await self.store.inbound_text(inbound_id)
        if found is None:
            return None
        sender, text = found
        folded = fold(text)
        keyword = next((k for k in self.flows.keywords if k.word == folded), None)
        if keyword is None:
            await self._survey_answer(inbound_id, sender, text)
            return None
        customer = await self.store.customer_by_phone(sender)
        if customer is None:
            log.info("customers.keyword_unknown_sender", keyword=keyword.word)
            return None
        prefs = await self.preferences(customer.id)
        if prefs.frequency is keyword.frequency:
            # Nothing changes, so no confirmation: an auto-responder repeating the keyword
            # cannot ping-pong with us (DESIGN: keywords).
            return None
        await self.set_preferences(
            customer.id, Preferences(prefs.kinds, keyword.frequency), source="keyword"
        )
        reply = compose(
            keyword.reply, brand=self.settings.brand, language=keyword.language, marketing=False
        )
        with contextlib.suppress(GatewayError):
            await self.gateway.submit(
                SubmitRequest(to=sender, text=reply, smart=True),
                idempotency_key=f"preference-reply:{inbound_id}",
            )
        return keyword.frequency.value

    async def _survey_answer(self, inbound_id: str, sender: str, text: str) -> None:
        """A reply matching the pattern of the customer's latest open question is its answer;
        it becomes a ``survey.answered`` event (for ``wait_for`` and branches)."""
        customer = await self.store.customer_by_phone(sender)
        if customer is None or not self._max_window:
            return
        now = self.clock.now()
        since = now - timedelta(seconds=self._max_window)
        for sent in await self.store.recent_sends(customer.id, since):
            flow = self.flows.flow(sent.flow)
            if flow is None:
                continue
            try:
                action = flow.steps[flow.index(sent.step)].action
            except KeyError:
                continue
            if not isinstance(action, Send) or action.survey is None:
                continue
            if (now - sent.send_at).total_seconds() > action.survey.window_seconds:
                continue
            answer = text.strip()
            if not re.fullmatch(action.survey.pattern, answer):
                continue
            if not await self.store.record_answer(
                sent.enrolment_id, sent.step, answer, inbound_id, now
            ):
                continue  # answered already: a second reply does not change it
            await self._answered(sent, customer.id, answer, now)
            return

    async def _answered(self, sent: NewSend, customer_id: str, answer: str, now: datetime) -> None:
        e = await self.store.enrolment(sent.enrolment_id)
        data = {"flow": sent.flow, "step": sent.step, "answer": answer}
        stored = NewEvent(
            event_id=f"answer-{sent.enrolment_id}-{sent.step}",
            type="survey.answered",
            customer_id=customer_id,
            order_id=e.order_id if e else None,
            occurred_at=now,
            received_at=now,
            payload=json.dumps({"type": "survey.answered", "data": data}),
        )
        await self.store.add_timeline(
            TimelineEntry(
                customer_id=customer_id,
                at=now,
                what="answered",
                flow=sent.flow,
                step=sent.step,
                detail={"answer": answer},
            )
        )
        async with self._lock:
            outcome = await self._ingest(stored, None)
        if outcome.enrolled or outcome.resumed:
            self.wake()
        log.info("flows.survey_answered", flow=sent.flow, step=sent.step)

    # -- events --------------------------------------------------------------------------

    async def post_event(self, event: Event) -> EventOutcome:
        """Store ``event`` (idempotent by its id), end, resume and start enrolments."""
        async with self._lock:
            outcome = await self._ingest(event.stored, event)
        if outcome.enrolled or outcome.resumed:
            self.wake()
        return outcome

    async def _ingest(self, stored: NewEvent, event: Event | None) -> EventOutcome:
        customer = event.customer if event else None
        order = event.order if event else None
        before = await self.store.customer(customer.id) if customer else None
        if not await self.store.ingest(stored, customer, order):
            return EventOutcome(stored.event_id, duplicate=True)
        if customer and before and before.consent_marketing and not customer.consent_marketing:
            await self._withdraw_marketing(customer.phone, "consent")
        if stored.customer_id is None:
            await self.store.mark_processed(stored.event_id)
            return EventOutcome(stored.event_id, duplicate=False)
        now = self.clock.now()
        exited = resumed = 0
        for e in await self.store.open_enrolments(stored.customer_id):
            flow = self.flows.flow(e.flow)
            if flow is None or not _same_subject(flow, e, stored):
                continue
            if stored.type in flow.exit_on:
                await self._end(e, EnrolmentStatus.EXITED, now, f"event:{stored.type}")
                exited += 1
            elif e.status is EnrolmentStatus.WAITING and e.waiting_for == stored.type:
                await self.store.move(
                    e.id,
                    status=EnrolmentStatus.ACTIVE,
                    step=e.step + 1,
                    due_at=now,
                    waiting_for=None,
                    now=now,
                )
                resumed += 1
        enrolled = await self._trigger(stored, now)
        await self.store.mark_processed(stored.event_id)
        log.info(
            "flows.event",
            type=stored.type,
            event_id=stored.event_id,
            enrolled=enrolled,
            exited=exited,
            resumed=resumed,
        )
        return EventOutcome(stored.event_id, False, tuple(enrolled), exited, resumed)

    async def _trigger(self, stored: NewEvent, now: datetime) -> list[str]:
        flows = self.flows.triggered_by(stored.type)
        if not flows or stored.customer_id is None:
            return []
        facts = await self._facts(stored.customer_id, stored.order_id)
        if facts is None:
            return []
        items = [
            EnrolmentRecord(
                id=str(uuid.uuid4()),
                flow=flow.name,
                customer_id=stored.customer_id,
                order_id=stored.order_id,
                event_id=stored.event_id,
                status=EnrolmentStatus.ACTIVE,
                step=0,
                due_at=now,
                waiting_for=None,
                started_at=now,
                exit_reason=None,
            )
            for flow in flows
            if facts.holds(flow.when)
        ]
        items = [i for i in items if not await self._stale(i, stored, now)]
        created = set(await self.store.enrol(items, now))
        return [i.flow for i in items if i.id in created]

    async def _stale(self, item: EnrolmentRecord, stored: NewEvent, now: datetime) -> bool:
        """Whether a newer update of the same order already superseded this flow: events
        apply in ``occurred_at`` order, so a late older one (shipped after out_for_delivery)
        starts nothing."""
        if item.order_id is None:
            return False
        for newer in self._superseders.get(item.flow, ()):
            latest = await self.store.latest_occurred(newer.trigger, item.order_id)
            if latest is not None and latest > stored.occurred_at:
                await self.store.add_timeline(
                    TimelineEntry(
                        customer_id=item.customer_id,
                        at=now,
                        what="skipped",
                        reason="superseded",
                        flow=item.flow,
                        detail={"event": stored.type, "newer": newer.trigger},
                    )
                )
                return True
        return False

    async def _facts(self, customer_id: str, order_id: str | None) -> Facts | None:
        customer = await self.store.customer(customer_id)
        if customer is None:
            return None
        order = await self.store.order(order_id) if order_id else None
        orders = tuple(await self.store.orders_of(customer_id))
        threshold = Decimal(str(self.settings.high_value_threshold))
        return Facts(customer, order, orders, threshold)

    # -- short links ---------------------------------------------------------------------

    async def open_link(self, code: str, *, method: str, user_agent: str | None) -> str | None:
        """Record a hit on ``code`` and return where it goes (None for an unknown code).

        A person's click becomes a ``link.clicked`` event; a preview fetcher's hit is only
        recorded (DESIGN: short links).
        """
        target = await self.store.link(code)
        if target is None:
            return None
        now = self.clock.now()
        reason = not_a_click(
            method, user_agent, now, target.delivered_at, self.settings.preview_window_seconds
        )
        seq = await self.store.record_click(
            code, now, method=method, user_agent=user_agent, counted=reason is None, reason=reason
        )
        log.info("flows.link_hit", code=code, counted=reason is None, reason=reason)
        if reason is None:
            data = {
                "code": code,
                "url": target.url,
                "flow": target.flow,
                "step": target.step,
                "enrolment": target.enrolment_id,
            }
            stored = NewEvent(
                event_id=f"click-{seq}",
                type="link.clicked",
                customer_id=target.customer_id,
                order_id=None,
                occurred_at=now,
                received_at=now,
                payload=json.dumps({"type": "link.clicked", "data": data}),
            )
            async with self._lock:
                outcome = await self._ingest(stored, None)
            if outcome.enrolled or outcome.resumed:
                self.wake()
        return target.url

    # -- steps ---------------------------------------------------------------------------

    async def run_due(self) -> datetime | None:
        """Run every step that is due now; returns when the next one is due."""
        async with self._lock:
            while True:
                now = self.clock.now()
                due = await self.store.claim_due(now, BATCH)
                for e in due:
                    try:
                        await self._advance(e, now)
                    except Exception:
                        # One broken enrolment must not stop the others: it ends, logged.
                        log.exception("flows.step_failed", enrolment=e.id, flow=e.flow)
                        await self._end(e, EnrolmentStatus.EXITED, now, "error")
                if len(due) < BATCH:
                    break
            return await self.store.next_due()

    async def _advance(self, e: EnrolmentRecord, now: datetime) -> None:
        flow = self.flows.flow(e.flow)
        if flow is None:
            await self._end(e, EnrolmentStatus.EXITED, now, "flow_removed")
            return
        i = e.step
        if e.status is EnrolmentStatus.WAITING:
            action = flow.steps[i].action
            if isinstance(action, WaitFor) and action.exit_on_timeout:
                await self._end(e, EnrolmentStatus.EXITED, now, "timeout")
                return
            i += 1
        facts: Facts | None = None
        for _ in range(_MAX_HOPS):
            if i >= len(flow.steps):
                await self._end(e, EnrolmentStatus.DONE, now, None, step=i)
                return
            step = flow.steps[i]
            action = step.action
            if isinstance(action, Wait) and action.until_field is not None:
                due = await self._until(e, action.until_field, action.seconds)
                if due is None:
                    await self._end(e, EnrolmentStatus.EXITED, now, "no_time", step=i)
                    return
                if due <= now:  # the reminder's time has come already: on at once
                    i += 1
                    continue
                await self._move(e, i + 1, due, now)
                return
            if isinstance(action, Wait):
                facts = facts or await self._facts(e.customer_id, e.order_id)
                seconds = self._wait_seconds(action, facts)
                if seconds <= 0:  # nothing to wait for (no usage_days): on at once
                    i += 1
                    continue
                await self._move(e, i + 1, now + timedelta(seconds=seconds), now)
                return
            if isinstance(action, WaitFor):
                if await self._already_seen(flow, e, action.event):
                    i += 1
                    continue
                await self.store.move(
                    e.id,
                    status=EnrolmentStatus.WAITING,
                    step=i,
                    due_at=now + timedelta(seconds=action.timeout_seconds),
                    waiting_for=action.event,
                    now=now,
                )
                return
            if isinstance(action, Branch):
                facts = facts or await self._facts(e.customer_id, e.order_id)
                holds = facts is not None and await self._holds(action.condition, facts, e)
                target = action.then if holds else action.otherwise
                if target == EXIT:
                    await self._end(e, EnrolmentStatus.EXITED, now, f"branch:{step.name}", step=i)
                    return
                i = flow.index(target) if target is not None else i + 1
                continue
            if isinstance(action, Send):
                if not await self._send(e, flow, step.name, action, now):
                    await self._end(e, EnrolmentStatus.EXITED, now, "opted_out", step=i)
                    return
                i += 1
                continue
            await self._exit(e, action, now, i)
            return
        await self._end(e, EnrolmentStatus.EXITED, now, "too_many_hops", step=i)

    async def _until(self, e: EnrolmentRecord, field: str, offset: float) -> datetime | None:
        """The event's ``data.<field>`` (an ISO time with a zone) plus ``offset`` seconds;
        None when the field is missing or not such a time."""
        value: Any = await self.store.event_data(e.event_id)
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, str):
            return None
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        return moment + timedelta(seconds=offset)

    async def _already_seen(self, flow: Flow, e: EnrolmentRecord, event_type: str) -> bool:
        # Events can arrive out of order (delivered posted before shipped): an order's event
        # that came at any time counts; for a customer-wide flow, one since it started.
        if flow.scope is Scope.ORDER and e.order_id is not None:
            return await self.store.seen_event(event_type, e.customer_id, e.order_id, None)
        return await self.store.seen_event(event_type, e.customer_id, None, e.started_at)

    def _wait_seconds(self, action: Wait, facts: Facts | None) -> float:
        if not action.usage_days:
            return action.seconds
        days = facts.usage_days() if facts else None
        if days is None:
            return 0.0
        return max(days * 86_400.0 - action.before_seconds, 0.0)

    async def _holds(self, cond: Condition, facts: Facts, e: EnrolmentRecord) -> bool:
        if not facts.holds(cond):
            return False
        if cond.clicked is not None and not await self.store.clicked(e.id, cond.clicked):
            return False
        if cond.answered is not None:
            answer = await self.store.answer(e.id, cond.answered)
            if answer is None or (cond.answers and answer not in cond.answers):
                return False
        if cond.replied is not None:
            sent = await self.store.sent_step(e.id, cond.replied)
            if sent is None or sent.outcome != "sent":
                return False
            return await self.store.replied(facts.customer.phone, sent.at)
        return True

    async def _exit(self, e: EnrolmentRecord, action: Exit, now: datetime, i: int) -> None:
        if action.unsubscribe:
            customer = await self.store.customer(e.customer_id)
            if customer is not None:
                await self._withdraw_marketing(customer.phone, e.flow)
        await self._end(e, EnrolmentStatus.EXITED, now, action.reason, step=i)

    async def _withdraw_marketing(self, phone: str, source: str) -> None:
        """A marketing-scope opt-out (DESIGN: opt-out scopes), unless one exists already:
        a STOP (scope all) must never be narrowed to marketing."""
        if await self.store.optout_scope(phone) is None:
            await self.gateway.add_optout(phone, scope=OptOutScope.MARKETING, source=source)

    async def _move(self, e: EnrolmentRecord, step: int, due: datetime, now: datetime) -> None:
        await self.store.move(
            e.id, status=EnrolmentStatus.ACTIVE, step=step, due_at=due, waiting_for=None, now=now
        )

    async def _end(
        self,
        e: EnrolmentRecord,
        status: EnrolmentStatus,
        now: datetime,
        reason: str | None,
        *,
        step: int | None = None,
    ) -> None:
        await self.store.move(
            e.id,
            status=status,
            step=e.step if step is None else step,
            due_at=None,
            waiting_for=None,
            now=now,
            exit_reason=reason,
        )
        log.info(
            "flows.enrolment_ended", enrolment=e.id, flow=e.flow, status=str(status), reason=reason
        )

    # -- sending -------------------------------------------------------------------------

    async def _send(
        self, e: EnrolmentRecord, flow: Flow, step: str, action: Send, now: datetime
    ) -> bool:
        """Run one send step; False when an opt-out ends the enrolment."""
        if await self.store.sent_step(e.id, step) is not None:
            return True  # ran before a restart: never twice
        facts = await self._facts(e.customer_id, e.order_id)
        if facts is None:
            return True
        customer = facts.customer
        if in_holdout(flow, customer.id):
            # The experiment's control: enrolled and tracked, sent nothing.
            await _Recorder(self.store, e, flow.name, step, customer, action, now, HOLDOUT)(
                "holdout"
            )
            return True
        template, variant = choose_template(flow.name, customer.id, action, facts.segments)
        marketing = action.category is Category.MARKETING
        consent = customer.consent_marketing if marketing else customer.consent_transactional
        record = _Recorder(self.store, e, flow.name, step, customer, action, now, variant)
        if not consent:
            await record("no_consent")
            return True
        scope = await self.store.optout_scope(customer.phone)
        if scope == OptOutScope.ALL.value or (scope == OptOutScope.MARKETING.value and marketing):
            await record("opted_out")
            return False
        prefs = await self.preferences(customer.id)
        if not prefs.allows(action.kind):
            # The customer's choice, not a refusal: the flow goes on past this step.
            await record("preference", detail={"frequency": prefs.frequency.value})
            return True
        text = await self._text(e, flow, step, action, template, facts, now)
        # Nodes sharing a database serialise on the number from the caps and gap check
        # to the send's record, so two sends to it never both pass the check.
        async with self.store.number_lock(customer.phone):
            # otp/alert steps are never deferred: no quiet hours, caps or gap for them.
            urgent = action.category.urgent
            send_at = now if urgent else await self._send_at(customer, marketing, now, prefs)
            req = SubmitRequest(
                to=customer.phone,
                text=text,
                category=action.category,
                send_at=send_at if send_at > now else None,
                smart=self.flows.templates[template].fold_accents,
                metadata={"flow": flow.name, "step": step, "enrolment": e.id},
            )
            try:
                result = await self.gateway.submit(req, idempotency_key=f"flow:{e.id}:{step}")
            except OptedOut:
                await record("opted_out")
                return False
            except IdempotencyConflict:
                # Submitted before a restart with another send_at: the message exists already.
                await record(
                    "sent",
                    send_at=send_at,
                    deferred=self._deferral(customer, marketing, now, send_at),
                )
                return True
            except GatewayError as exc:
                log.warning("flows.send_refused", enrolment=e.id, step=step, error=exc.message)
                await record("refused", detail={"error": exc.message})
                return True
            deferred = self._deferral(customer, marketing, now, send_at)
            await record("sent", message_id=result.id, send_at=send_at, deferred=deferred)
        if action.supersedes and e.order_id is not None:
            await self._supersede(action.supersedes, e.order_id, customer.id, now)
        log.info("flows.sent", flow=flow.name, step=step, message=result.id, send_at=send_at)
        return True

    async def _supersede(
        self, flows: tuple[str, ...], order_id: str, customer_id: str, now: datetime
    ) -> None:
        """Cancel the order's queued messages of ``flows`` (a newer update replaced them)."""
        for old in await self.store.queued_sends(flows, order_id):
            if old.message_id is None:
                continue
            try:
                await self.gateway.cancel(old.message_id, reason="superseded")
            except GatewayError:
                continue  # it went out meanwhile: nothing to take back
            await self.store.add_timeline(
                TimelineEntry(
                    customer_id=customer_id,
                    at=now,
                    what="cancelled",
                    reason="superseded",
                    flow=old.flow,
                    step=old.step,
                    message_id=old.message_id,
                )
            )
            log.info("flows.superseded", flow=old.flow, step=old.step, message=old.message_id)

    async def _text(
        self,
        e: EnrolmentRecord,
        flow: Flow,
        step: str,
        action: Send,
        template: str,
        facts: Facts,
        now: datetime,
    ) -> str:
        customer = facts.customer
        context = {
            "customer": {
                "id": customer.id,
                "name": customer.name or "",
                "first_name": (customer.name or "").split(" ")[0],
                "locale": customer.locale,
            },
            "order": order_context(facts.order) if facts.order else {},
            "event": {
                "type": flow.trigger,
                "event_id": e.event_id,
                "data": await self.store.event_data(e.event_id),
            },
            "links": self.flows.links,
            "brand": self.settings.brand,
            "preferences_url": await self.preferences_url(customer.id),
        }
        zones = zones_for(customer.timezone, customer.phone, self.settings.default_timezone)
        lang, body = self._renderer.render(
            self.flows.templates[template],
            context,
            locale=customer.locale,
            timezone=zones[0].key,
        )
        known = await self.store.links_of(e.id, step)
        fresh: list[tuple[str, str]] = []

        def code_for(url: str) -> str:
            if url in known:
                return known[url]
            code = new_code()
            fresh.append((code, url))
            return code

        body, _ = shorten(body, self.settings.public_base_url, code_for)
        if fresh:
            await self.store.add_links(e.id, step, fresh, now)
        marketing = action.category is Category.MARKETING
        return compose(body, brand=self.settings.brand, language=lang, marketing=marketing)

    def _deferral(
        self, customer: CustomerRecord, marketing: bool, now: datetime, send_at: datetime
    ) -> str | None:
        """Why a send waits: ``quiet_hours`` when now is quiet in a zone, else ``cap``."""
        if send_at <= now:
            return None
        s = self.settings
        if marketing or s.quiet_transactional:
            zones = zones_for(customer.timezone, customer.phone, s.default_timezone)
            if any(self._quiet.next_allowed(now, zone) > now for zone in zones):
                return "quiet_hours"
        return "cap"

    async def preferences(self, customer_id: str) -> Preferences:
        """The customer's stored choice, or every kind at ``normal``."""
        row = await self.store.preferences(customer_id)
        return Preferences() if row is None else preferences_from_row(*row)

    async def set_preferences(
        self, customer_id: str, prefs: Preferences, *, source: str
    ) -> Preferences:
        """Store a choice (recorded in the timeline); ``essential`` also adds no opt-out:
        the engine honours it at each step."""
        kinds = ",".join(sorted(k.value for k in prefs.kinds))
        await self.store.set_preferences(
            customer_id, kinds, prefs.frequency.value, source=source, at=self.clock.now()
        )
        log.info("customers.preferences", customer=customer_id, frequency=str(prefs.frequency))
        return prefs

    async def preferences_url(self, customer_id: str) -> str:
        """The customer's signed, expiring link to the preferences page."""
        expires = self.clock.now() + timedelta(days=PAGE_LINK_DAYS)
        token = sign(await self.store.secret(PAGE_SECRET), customer_id, expires)
        return f"{self.settings.public_base_url.rstrip('/')}/p/{token}"

    async def page_customer(self, token: str) -> str | None:
        """The customer a preferences-page token is for (None: forged or expired)."""
        return verify(await self.store.secret(PAGE_SECRET), token, self.clock.now())

    async def timeline(self, customer_id: str, limit: int = 500) -> list[TimelineEntry]:
        """Every decision recorded for the customer, oldest first."""
        return await self.store.timeline(customer_id, limit)

    async def export_customer(self, customer_id: str) -> dict[str, Any] | None:
        """Everything stored about the customer (None when unknown)."""
        return await self.store.export_customer(customer_id)

    async def erase_customer(self, customer_id: str) -> bool:
        """Erase the customer's personal data (False when unknown); their queued messages
        are cancelled first, through the gateway, so its queue stays exact."""
        async with self._lock:
            customer = await self.store.customer(customer_id)
            if customer is None:
                return False
            for message_id in await self.store.queued_to(customer.phone):
                with contextlib.suppress(GatewayError):
                    await self.gateway.cancel(message_id, reason="erased")
            erased = await self.store.erase_customer(customer_id, self.clock.now())
        log.info("customers.erased", customer=customer_id)
        return erased

    async def purge_expired_texts(self) -> tuple[int, int]:
        """Retention: texts older than ``retention_days`` purged (none without the setting)."""
        days = self.settings.retention_days
        if days is None:
            return (0, 0)
        purged = await self.store.purge_texts(self.clock.now() - timedelta(days=days))
        if any(purged):
            log.info("customers.retention_purged", messages=purged[0], inbound=purged[1])
        return purged

    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.purge_expired_texts()
            except Exception:
                log.exception("customers.retention_failed")
            await self.clock.sleep(RETENTION_EVERY_SECONDS)

    async def _send_at(
        self, customer: CustomerRecord, marketing: bool, now: datetime, prefs: Preferences
    ) -> datetime:
        s = self.settings
        zones = zones_for(customer.timezone, customer.phone, s.default_timezone)
        quiet = self._quiet if marketing or s.quiet_transactional else None
        caps = Caps(
            prefs.cap(self._caps.per_day), prefs.cap(self._caps.per_week), self._caps.min_gap
        )
        all_times = await self.store.send_times(customer.id, now - WEEK, None)
        mkt = await self.store.send_times(customer.id, now - WEEK, Category.MARKETING.value)
        try:
            return resolve_send_at(
                now,
                quiet=quiet,
                zones=zones,
                caps=caps,
                marketing=marketing,
                marketing_times=mkt,
                all_times=all_times,
            )
        except ValueError:
            # The zones' windows never meet: honour the first (primary) zone alone.
            return resolve_send_at(
                now,
                quiet=quiet,
                zones=zones[:1],
                caps=caps,
                marketing=marketing,
                marketing_times=mkt,
                all_times=all_times,
            )

    # -- metrics -------------------------------------------------------------------------

    async def metrics(self, since: datetime) -> FlowMetrics:
        """Per flow and step: enrolled, sent, delivered, failed, clicked, replied, ..."""
        s = self.settings
        enrolled = await self.store.enrolled_counts(since)
        steps = await self.store.step_counts(
            since,
            reply_window=s.reply_window_days * 86_400.0,
            conversion_window=s.conversion_window_days * 86_400.0,
        )
        return build_metrics(since, [f.name for f in self.flows.flows], enrolled, steps)


class _Recorder:
    """Writes the one ``flow_sends`` row of a send step and its timeline entry."""

    def __init__(
        self,
        store: FlowStore,
        e: EnrolmentRecord,
        flow: str,
        step: str,
        customer: CustomerRecord,
        action: Send,
        now: datetime,
        variant: str | None = None,
    ) -> None:
        self._store, self._e, self._flow, self._step = store, e, flow, step
        self._customer, self._action, self._now = customer, action, now
        self._variant = variant

    async def __call__(
        self,
        outcome: str,
        *,
        message_id: str | None = None,
        send_at: datetime | None = None,
        deferred: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        if outcome == "sent":
            what, reason = ("deferred", deferred) if deferred else ("sent", None)
        else:
            what, reason = "skipped", outcome
        info = dict(detail or {})
        if self._variant is not None:
            info["variant"] = self._variant
        if send_at is not None:
            info["send_at"] = send_at.isoformat().replace("+00:00", "Z")
        await self._store.add_timeline(
            TimelineEntry(
                customer_id=self._customer.id,
                at=self._now,
                what=what,
                reason=reason,
                flow=self._flow,
                step=self._step,
                kind=self._action.kind.value,
                message_id=message_id,
                detail=info,
            )
        )
        await self._store.record_send(
            NewSend(
                enrolment_id=self._e.id,
                flow=self._flow,
                step=self._step,
                customer_id=self._customer.id,
                phone=self._customer.phone,
                category=self._action.category.value,
                outcome=outcome,
                variant=self._variant,
                message_id=message_id,
                at=self._now,
                send_at=send_at or self._now,
            )
        )


def _same_subject(flow: Flow, e: EnrolmentRecord, event: NewEvent) -> bool:
    # Order-scoped flows react to events of their own order; customer-scoped ones to any.
    if flow.scope is Scope.CUSTOMER or event.order_id is None or e.order_id is None:
        return True
    return e.order_id == event.order_id
