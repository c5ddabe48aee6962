"""Monthly quotas: a SIM that sent its ``monthly_quota`` parts this calendar month (UTC)
pauses itself until the month turns, then resumes.

Counted parts come from the store (at start, every ``CHECK_SECONDS`` and whenever a modem
comes up with a quota SIM), and in between from ``PartSent`` events. On PostgreSQL the store
counts every node's parts, so a SIM moved from another node keeps its month's count.

The check is at part granularity: a message whose parts were already reserved when the
quota was reached finishes (its remaining parts go out); no new message starts.

No part may leave a SIM at its quota, also right after a restart or a move, when the
modem's ICCID is not known yet at start. So the monitor listens to every modem's state
changes, which the driver calls synchronously as the modem becomes READY, before any
worker that change woke can run: a SIM known to be at its quota is paused there and then,
and a SIM under it is held (paused) until its count was read again from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from drivers.clock import Clock
from drivers.modem import ModemState
from gatewayd.config.model import GatewayConfig
from gatewayd.core import Gateway
from gatewayd.core.dispatch import ModemWorker
from gatewayd.core.observe import GatewayEvent, PartSent
from gatewayd.core.ports import ModemPort
from gatewayd.store.quota_base import SentCounts

log = structlog.get_logger(__name__)

CHECK_SECONDS = 60.0
# States in which the SIM is known to have stayed in its modem: any other one (gone,
# reconnecting, initialising...) may end with another SIM, or this one back from elsewhere.
_SAME_SESSION = frozenset({ModemState.READY, ModemState.DEGRADED})


def month_start(now: datetime) -> datetime:
    """The first instant of ``now``'s calendar month, UTC."""
    now = now.astimezone(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


@dataclass
class _Month:
    quota: int
    start: datetime
    sent: int

    @property
    def reached(self) -> bool:
        return self.sent >= self.quota


class QuotaMonitor:
    """Keeps each quota SIM's count for the month and pauses/resumes its modem.

    Construct it before the modems start (the gateway's workers may run already): it
    listens to the state changes of every modem the gateway has then; :meth:`attach` one
    found later (before it starts).
    """

    def __init__(
        self, config: GatewayConfig, gateway: Gateway, counts: SentCounts, *, clock: Clock
    ) -> None:
        self._quotas = {
            s.iccid: s.monthly_quota
            for s in config.sims
            if s.iccid is not None and s.monthly_quota is not None
        }
        self._gateway = gateway
        self._counts = counts
        self._clock = clock
        self._months: dict[str, _Month] = {}
        # Worker name -> the SIM this monitor paused it for (its quota reached).
        self._over: dict[str, str] = {}
        # Workers this monitor paused until their SIM's count is read again.
        self._held: set[str] = set()
        # Worker name -> the SIM checked since its modem last came up (absent: none yet).
        self._seen: dict[str, str] = {}
        self._attached: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._unsubscribe = gateway.observers.subscribe(self._on_event)
        for worker in gateway.workers:
            self.attach(worker.modem)

    def sent_this_month(self, sim: str | None) -> tuple[int, int] | None:
        """``(sent, quota)`` of a SIM with a quota, else None."""
        month = self._months.get(sim or "")
        return (month.sent, month.quota) if month is not None else None

    def attach(self, modem: ModemPort) -> None:
        """Check ``modem``'s SIM each time it changes state (call before the modem starts)."""
        if modem.name in self._attached:
            return
        self._attached.add(modem.name)
        modem.on_state_change(lambda _state, _reason: self._modem_changed(modem.name))

    async def start(self) -> None:
        """Load this month's counts (before the modems send), then keep them."""
        await self._load()
        # Modems that came up before this monitor listened (none in the daemon's order).
        for worker in self._gateway.workers:
            self._modem_changed(worker.name)
        self._task = asyncio.create_task(self._run(), name="fleet-quota")

    async def stop(self) -> None:
        """Stop keeping counts."""
        self._unsubscribe()
        tasks = [t for t in (self._task, *self._pending) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _read(self, sim: str, start: datetime) -> None:
        """Read ``sim``'s count for the month from ``start`` (the store: every node's parts)."""
        sent = await self._counts.sent_since(sim, start)
        month = self._months.get(sim)
        if month is not None and month.start == start:
            # A PartSent that arrived during the read may be missing from it: never count
            # fewer than this node saw (a month's count only grows).
            month.sent = max(month.sent, sent)
        else:
            self._months[sim] = _Month(self._quotas[sim], start, sent)

    async def _load(self) -> None:
        start = month_start(self._clock.now())
        held = set(self._held)
        for sim in self._quotas:
            await self._read(sim, start)
        self._enforce()
        # Every count was read after these holds began: a hold whose own read failed ends.
        for name in held:
            self._release(name)

    async def _run(self) -> None:
        while True:
            await self._clock.sleep(CHECK_SECONDS)
            try:
                await self._load()
            except Exception:
                log.exception("quota.load_failed")

    def _on_event(self, event: GatewayEvent) -> None:
        if isinstance(event, PartSent) and (month := self._months.get(event.sim)) is not None:
            month.sent += 1
            self._enforce()

    def _worker(self, name: str) -> ModemWorker | None:
        return next((w for w in self._gateway.workers if w.name == name), None)

    def _modem_changed(self, name: str) -> None:
        """A modem's state changed: runs inside the driver's change, before any worker."""
        worker = self._worker(name)
        if worker is None:
            return
        modem = worker.modem
        if modem.state not in _SAME_SESSION:
            self._seen.pop(name, None)
            return
        sim = modem.identity
        if sim is None or self._seen.get(name) == sim:
            return
        self._seen[name] = sim
        self._enforce()
        if sim not in self._quotas:
            self._release(name)
            return
        # Known under its quota here, but it may have sent elsewhere (another node) since
        # this node last read its count: no part until the store answered.
        if not worker.paused:
            worker.paused = True
            self._held.add(name)
        self._spawn(self._verify(name, sim))

    async def _verify(self, name: str, sim: str) -> None:
        try:
            await self._read(sim, month_start(self._clock.now()))
        except Exception:
            # Held until the next periodic load reads it: never sent on a count not read.
            log.exception("quota.load_failed", modem=name, sim=sim)
            return
        self._enforce()
        worker = self._worker(name)
        if worker is not None and worker.modem.identity == sim:
            self._release(name)

    def _release(self, name: str) -> None:
        """End a hold (the worker stays paused if its SIM is at its quota)."""
        if name not in self._held:
            return
        self._held.discard(name)
        worker = self._worker(name)
        if worker is not None and name not in self._over:
            worker.paused = False
            self._gateway.wake_all()

    def _enforce(self) -> None:
        for worker in self._gateway.workers:
            sim = worker.modem.identity
            if sim is None:
                continue  # not known yet: the state change that reads it comes back here
            month = self._months.get(sim)
            if month is not None and month.reached:
                if worker.name not in self._over:
                    self._over[worker.name] = sim
                    log.warning(
                        "quota.reached", modem=worker.name, sent=month.sent, quota=month.quota
                    )
                    # At once (inside the PartSent of the last part, or the modem's change
                    # to READY): before the worker's next step.
                    worker.paused = True
            elif worker.name in self._over:
                # A new month, or another SIM in the modem.
                previous = self._over.pop(worker.name)
                log.info("quota.resumed", modem=worker.name, sim=sim, previous_sim=previous)
                if worker.name not in self._held:
                    self._spawn(self._gateway.resume(worker.name))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
