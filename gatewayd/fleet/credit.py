"""Prepaid credit: a SIM's balance read by USSD on a schedule and after every N parts sent.

Below its floor the SIM pauses itself (its worker takes no work) and ``credit_low`` is raised
(gatewayd.fleet.alarms asks :meth:`CreditMonitor.low`); a later check above the floor, after
a top-up, resumes it. One task owns the schedule; checks of one modem never overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from drivers.at import AtError, PortGone
from drivers.clock import Clock
from drivers.modem import Modem, ModemNotReady, ModemState
from drivers.modem.ussd import UssdError
from gatewayd.config.model import CreditConfig, GatewayConfig
from gatewayd.core import Gateway
from gatewayd.core.observe import GatewayEvent, PartSent
from gatewayd.fleet.binding import find_sim

log = structlog.get_logger(__name__)

USSD_SECONDS = 30.0  # a network may take this long to answer a USSD request
RETRY_SECONDS = 300.0  # after a failed check
PENDING_SECONDS = 1.0  # look again this soon while a modem's SIM is not known yet


class CreditUnreadable(Exception):
    """The USSD answer holds no amount the configured pattern finds."""

    def __init__(self, answer: str) -> None:
        super().__init__(f"no amount in USSD answer {answer[:80]!r}")
        self.answer = answer


def read_amount(answer: str, pattern: str) -> float:
    """The amount in ``answer``: the first group of ``pattern`` ("4,90" reads 4.90)."""
    m = re.search(pattern, answer)
    if m is None or m.group(1) is None:
        raise CreditUnreadable(answer)
    try:
        return float(m.group(1).replace(",", "."))
    except ValueError as exc:
        raise CreditUnreadable(answer) from exc


@dataclass(frozen=True)
class Balance:
    """The last balance read for one modem's SIM."""

    amount: float
    answer: str
    at: datetime
    below_floor: bool


@dataclass
class _State:
    credit: CreditConfig
    sends: int = 0
    due: datetime | None = None
    balance: Balance | None = None
    paused: bool = False  # paused by us (resumed by us after a top-up)
    running: bool = False


class CreditMonitor:
    """Balance checks for every modem whose SIM has a ``[sims.credit]`` entry."""

    def __init__(self, config: GatewayConfig, gateway: Gateway, *, clock: Clock) -> None:
        self._config = config
        self._gateway = gateway
        self._clock = clock
        self._states: dict[str, _State] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._checks: set[asyncio.Task[None]] = set()
        self._unsubscribe = gateway.observers.subscribe(self._on_event)

    def balance(self, modem: str) -> Balance | None:
        """The last balance read for ``modem``, if any."""
        state = self._states.get(modem)
        return state.balance if state is not None else None

    def low(self, modem: str) -> str | None:
        """Why ``modem``'s credit is low (for the alarm), or None."""
        b = self.balance(modem)
        if b is None or not b.below_floor:
            return None
        return f"balance {b.amount:g} below floor {self._states[modem].credit.floor:g}"

    def start(self) -> None:
        """Start the schedule (the first check of each SIM is due when it is first seen)."""
        self._task = asyncio.create_task(self._run(), name="fleet-credit")

    async def stop(self) -> None:
        """Stop the schedule and any check in flight."""
        self._unsubscribe()
        tasks = [t for t in (self._task, *self._checks) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def check(self, name: str) -> Balance:
        """Read ``name``'s balance now, pause or resume its SIM; raises what the read raised."""
        state = self._state(name)
        if state is None:
            raise KeyError(name)
        modem = self._modem(name)
        state.running = True
        taken = state.sends  # parts sent while the answer comes count towards the next check
        try:
            answer = await modem.ussd(state.credit.ussd, limit=USSD_SECONDS)
        finally:
            state.running = False
        return await self._apply(name, state, answer, taken)

    async def run_code(self, name: str, code: str) -> tuple[str, Balance | None]:
        """Run any USSD ``code`` on ``name``; a balance code's answer is also applied."""
        state = self._state(name)
        taken = state.sends if state is not None else 0
        answer = await self._modem(name).ussd(code, limit=USSD_SECONDS)
        if state is not None and code == state.credit.ussd:
            return answer, await self._apply(name, state, answer, taken)
        return answer, None

    def _modem(self, name: str) -> Modem:
        for w in self._gateway.workers:
            if w.name == name and isinstance(w.modem, Modem):
                return w.modem
        raise KeyError(name)

    def _state(self, name: str) -> _State | None:
        worker = next((w for w in self._gateway.workers if w.name == name), None)
        if worker is None:
            return None
        info = worker.modem.info
        sim = find_sim(self._config, info.iccid, info.imei)
        if sim is None or sim.credit is None:
            self._states.pop(name, None)
            return None
        state = self._states.get(name)
        if state is None or state.credit != sim.credit:
            state = self._states[name] = _State(sim.credit, due=self._clock.now())
        return state

    async def _apply(self, name: str, state: _State, answer: str, taken: int) -> Balance:
        now = self._clock.now()
        amount = read_amount(answer, state.credit.pattern)
        below = amount < state.credit.floor
        state.balance = Balance(amount, answer, now, below)
        state.sends = max(0, state.sends - taken)
        state.due = now + timedelta(hours=state.credit.every_hours)
        if state.sends >= state.credit.every_sends:
            state.due = now
        log.info("credit.balance", modem=name, amount=amount, floor=state.credit.floor)
        if below and not state.paused:
            state.paused = True
            log.warning("credit.paused", modem=name, amount=amount, floor=state.credit.floor)
            await self._gateway.pause(name)
        elif not below and state.paused:
            state.paused = False
            log.info("credit.resumed", modem=name, amount=amount)
            await self._gateway.resume(name)
        return state.balance

    def _on_event(self, event: GatewayEvent) -> None:
        if not isinstance(event, PartSent):
            return
        state = self._states.get(event.modem)
        if state is None:
            return
        state.sends += 1
        if state.sends >= state.credit.every_sends:
            state.due = self._clock.now()
            self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock.now()
            due: list[datetime] = []
            for w in self._gateway.workers:
                state = self._state(w.name)
                if state is None or state.due is None:
                    continue
                serving = w.usable() or (state.paused and w.modem.state is ModemState.READY)
                if state.due <= now and not state.running and serving:
                    self._spawn(w.name, state)
                elif state.due > now:
                    due.append(state.due)
            wait = min((d - now).total_seconds() for d in due) if due else RETRY_SECONDS
            if any(w.modem.identity is None for w in self._gateway.workers):
                wait = min(wait, PENDING_SECONDS)  # a SIM not read yet may need a check
            sleeper = asyncio.ensure_future(self._clock.sleep(min(max(wait, 0.05), 60.0)))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()

    def _spawn(self, name: str, state: _State) -> None:
        state.running = True

        async def run() -> None:
            try:
                await self.check(name)
            except (UssdError, CreditUnreadable, ModemNotReady, AtError, PortGone) as exc:
                state.due = self._clock.now() + timedelta(seconds=RETRY_SECONDS)
                log.warning("credit.check_failed", modem=name, error=str(exc))
            except TimeoutError:
                state.due = self._clock.now() + timedelta(seconds=RETRY_SECONDS)
                log.warning("credit.check_failed", modem=name, error="no USSD answer")
            finally:
                state.running = False
                self._wake.set()

        task = asyncio.create_task(run(), name=f"credit-{name}")
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)
