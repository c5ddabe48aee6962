"""Health alarms per modem: raise, clear, and never flap.

Every alarm has a condition that is looked at every ``check_seconds`` (and on each gateway
event that feeds it). A condition must hold ``raise_after_seconds`` before its alarm raises
and be gone ``clear_after_seconds`` before it clears; storage and signal also use two
thresholds (raise above 80 %, clear below 70 %). Each change is a webhook
(``modem.alarm`` / ``modem.alarm_cleared``), an :class:`AlarmChanged` event (the Prometheus
gauge), and a log event; :meth:`AlarmMonitor.active` feeds the API and the status page.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

import structlog

from drivers.clock import Clock
from drivers.modem import ModemState
from gatewayd.config.model import AlarmsConfig
from gatewayd.core.observe import (
    AlarmChanged,
    GatewayEvent,
    Observers,
    PartSent,
    ReportMatched,
    SendFailed,
)
from gatewayd.core.ports import ModemPort
from gatewayd.store import Store

log = structlog.get_logger(__name__)


class AlarmKind(StrEnum):
    """What is wrong."""

    MODEM_GONE = "modem_gone"
    NOT_REGISTERED = "not_registered"
    SIM_FAULT = "sim_fault"  # the +CMS fault class took the SIM out of service (DESIGN)
    PIN_NEEDED = "pin_needed"  # PIN or PUK: only a person can fix it
    STORAGE_HIGH = "storage_high"
    SIGNAL_LOW = "signal_low"
    CREDIT_LOW = "credit_low"
    NO_REPORTS = "no_reports"  # many parts sent, not one report: often barring
    SEND_ERRORS = "send_errors"


# Conditions a person must fix, or that are already slow to build up, raise at once.
_AT_ONCE = frozenset(
    {AlarmKind.PIN_NEEDED, AlarmKind.SIM_FAULT, AlarmKind.NO_REPORTS, AlarmKind.CREDIT_LOW}
)


@dataclass(frozen=True)
class Alarm:
    """One raised alarm."""

    modem: str
    kind: AlarmKind
    detail: str
    raised_at: datetime
    sim: str | None = None

    def to_json(self) -> dict[str, object]:
        """The API's and the webhook's ``Alarm``."""
        return {
            "modem": self.modem,
            "sim": self.sim,
            "alarm": self.kind.value,
            "detail": self.detail,
            "raised_at": self.raised_at.isoformat().replace("+00:00", "Z"),
        }


@dataclass(frozen=True)
class Change:
    """An alarm raised or cleared by :meth:`AlarmBook.observe`."""

    alarm: Alarm
    raised: bool


@dataclass
class _Track:
    since: datetime | None = None  # when the condition started (not raised) or stopped (raised)
    alarm: Alarm | None = None


class AlarmBook:
    """Hysteresis for every (modem, alarm): pure bookkeeping, the caller supplies time."""

    def __init__(self, raise_after: float, clear_after: float) -> None:
        self._raise_after = timedelta(seconds=raise_after)
        self._clear_after = timedelta(seconds=clear_after)
        self._tracks: dict[tuple[str, AlarmKind], _Track] = {}

    def raised(self, modem: str, kind: AlarmKind) -> bool:
        """Whether this alarm is raised now."""
        track = self._tracks.get((modem, kind))
        return track is not None and track.alarm is not None

    def active(self) -> list[Alarm]:
        """Every raised alarm, oldest first."""
        alarms = [t.alarm for t in self._tracks.values() if t.alarm is not None]
        return sorted(alarms, key=lambda a: (a.raised_at, a.modem, a.kind.value))

    def observe(
        self,
        modem: str,
        kind: AlarmKind,
        holds: bool,
        detail: str,
        now: datetime,
        *,
        sim: str | None = None,
        hold_for: timedelta | None = None,
    ) -> Change | None:
        """Feed the condition's value now; returns the raise or clear it causes, if any."""
        track = self._tracks.setdefault((modem, kind), _Track())
        if track.alarm is None:
            if not holds:
                track.since = None
                return None
            track.since = track.since or now
            wait = hold_for if hold_for is not None else self._raise_after
            if kind in _AT_ONCE and hold_for is None:
                wait = timedelta(0)
            if now - track.since < wait:
                return None
            track.alarm, track.since = Alarm(modem, kind, detail, now, sim), None
            return Change(track.alarm, raised=True)
        if holds:
            track.since = None
            return None
        track.since = track.since or now
        if now - track.since < self._clear_after:
            return None
        alarm, track.alarm, track.since = track.alarm, None, None
        return Change(alarm, raised=False)


class Watched(Protocol):
    """A dispatch worker as the monitor sees it (gatewayd.core.dispatch.ModemWorker)."""

    @property
    def modem(self) -> ModemPort:
        """The modem it drives."""
        ...

    @property
    def out_of_service(self) -> str | None:
        """Why its SIM was taken out of service (a +CMS fault), if it was."""
        ...


@dataclass
class _Sends:
    without_report: int = 0
    outcomes: deque[bool] | None = None  # True: an error


class AlarmMonitor:
    """Looks at every modem on a timer and at send events; raises and clears alarms."""

    def __init__(
        self,
        config: AlarmsConfig,
        *,
        workers: Callable[[], Iterable[Watched]],
        store: Store,
        observers: Observers,
        clock: Clock,
        credit_low: Callable[[str], str | None] | None = None,
    ) -> None:
        self._config = config
        self._workers = workers
        self._store = store
        self._observers = observers
        self._clock = clock
        self._credit_low = credit_low
        self.book = AlarmBook(config.raise_after_seconds, config.clear_after_seconds)
        self._sends: dict[str, _Sends] = {}
        self._sims: dict[str, str | None] = {}  # every modem seen, with its SIM
        self._task: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = None

    def active(self) -> list[Alarm]:
        """Every raised alarm."""
        return self.book.active()

    def start(self) -> None:
        """Subscribe to send events and start the periodic check."""
        self._unsubscribe = self._observers.subscribe(self._on_event)
        self._task = asyncio.create_task(self._run(), name="fleet-alarms")

    async def stop(self) -> None:
        """Stop checking; webhook writes already started finish."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._writes:
            await asyncio.wait(self._writes, timeout=2.0)

    async def _run(self) -> None:
        while True:
            try:
                self.check()
            except Exception:
                log.exception("alarm.check_failed")
            await self._clock.sleep(self._config.check_seconds)

    def check(self) -> list[Change]:
        """Look at every modem once now; returns what changed."""
        now = self._clock.now()
        changes: list[Change] = []
        present: set[str] = set()
        for worker in self._workers():
            modem = worker.modem
            present.add(modem.name)
            self._sims[modem.name] = modem.identity or self._sims.get(modem.name)
            for kind, holds, detail, hold_for in self._conditions(worker):
                changes += self._feed(modem.name, kind, holds, detail, now, hold_for)
        for name in [n for n in self._sims if n not in present]:
            # Detached (its port vanished): gone until it comes back under the same name.
            changes += self._feed(name, AlarmKind.MODEM_GONE, True, "port vanished", now, None)
        return changes

    def _conditions(
        self, worker: Watched
    ) -> Iterable[tuple[AlarmKind, bool, str, timedelta | None]]:
        c = self._config
        modem = worker.modem
        state, reason, info = modem.state, modem.state_reason, modem.info
        gone = state in (ModemState.GONE, ModemState.RECONNECTING)
        yield AlarmKind.MODEM_GONE, gone, reason, None
        pin = state is ModemState.FAILED and ("PIN" in reason or "PUK" in reason)
        yield AlarmKind.PIN_NEEDED, pin, reason, None
        sim_failed = state is ModemState.FAILED and "SIM" in reason and not pin
        fault = worker.out_of_service or (reason if sim_failed else None)
        yield AlarmKind.SIM_FAULT, fault is not None, fault or "", None
        serving = state in (ModemState.READY, ModemState.DEGRADED)
        unregistered = state is ModemState.DEGRADED and reason.startswith("not registered")
        yield AlarmKind.NOT_REGISTERED, unregistered, reason, None
        raised = self.book.raised(modem.name, AlarmKind.STORAGE_HIGH)
        used, total = info.storage_used, info.storage_total
        ratio = used / total if serving and used is not None and total else None
        limit = c.storage_clear_ratio if raised else c.storage_raise_ratio
        high = ratio is not None and ratio >= limit
        yield AlarmKind.STORAGE_HIGH, high, f"storage {used}/{total}", timedelta(0)
        raised = self.book.raised(modem.name, AlarmKind.SIGNAL_LOW)
        dbm = info.signal_dbm if serving else None
        threshold = c.signal_clear_dbm if raised else c.signal_low_dbm
        low = dbm is not None and dbm < threshold
        hold = timedelta(minutes=c.signal_low_minutes)
        yield AlarmKind.SIGNAL_LOW, low, f"signal {dbm} dBm", hold
        sends = self._sends.get(modem.name, _Sends())
        silent = sends.without_report >= c.no_reports_after_parts
        yield AlarmKind.NO_REPORTS, silent, f"{sends.without_report} parts without a report", None
        outcomes = sends.outcomes or deque()
        rate = sum(outcomes) / len(outcomes) if len(outcomes) >= c.error_window else 0.0
        yield AlarmKind.SEND_ERRORS, rate >= c.error_rate, f"error rate {rate:.0%}", timedelta(0)
        if self._credit_low is not None:
            credit = self._credit_low(modem.name)
            yield AlarmKind.CREDIT_LOW, credit is not None, credit or "", None

    def _feed(
        self,
        name: str,
        kind: AlarmKind,
        holds: bool,
        detail: str,
        now: datetime,
        hold_for: timedelta | None,
    ) -> list[Change]:
        sim = self._sims.get(name)
        change = self.book.observe(name, kind, holds, detail, now, sim=sim, hold_for=hold_for)
        if change is None:
            return []
        self._announce(change, now)
        return [change]

    def _announce(self, change: Change, now: datetime) -> None:
        alarm = change.alarm
        event = "modem.alarm" if change.raised else "modem.alarm_cleared"
        fields = {"modem": alarm.modem, "sim": alarm.sim, "alarm": alarm.kind.value}
        if change.raised:
            log.warning(event, **fields, detail=alarm.detail)
        else:
            log.info(event, **fields)
        self._observers.emit(
            AlarmChanged(alarm.modem, alarm.kind, change.raised, alarm.detail, now)
        )
        data = {**alarm.to_json(), "at": now.isoformat().replace("+00:00", "Z")}
        task = asyncio.create_task(self._write(event, data, now))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, event: str, data: dict[str, object], now: datetime) -> None:
        try:
            await self._store.record_event(event, data, now)
        except Exception:
            log.exception("alarm.webhook_not_stored", event=event)

    def _on_event(self, event: GatewayEvent) -> None:
        window = self._config.error_window
        match event:
            case PartSent(modem=modem):
                sends = self._sends.setdefault(modem, _Sends())
                sends.without_report += 1
                self._outcome(sends, error=False, window=window)
            case SendFailed(modem=modem, code=code) if code != "modem_gone":
                self._outcome(self._sends.setdefault(modem, _Sends()), error=True, window=window)
            case ReportMatched(modem=modem):
                self._sends.setdefault(modem, _Sends()).without_report = 0
            case _:
                return
        self.check()

    @staticmethod
    def _outcome(sends: _Sends, *, error: bool, window: int) -> None:
        if sends.outcomes is None:
            sends.outcomes = deque(maxlen=window)
        sends.outcomes.append(error)
