"""Alarms raise after their condition held, clear after it was gone, and never flap; each
change is a webhook event in the store and an AlarmChanged event (the Prometheus gauge).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drivers.clock import ManualClock
from drivers.modem import ModemInfo, ModemState
from gatewayd.config.model import AlarmsConfig
from gatewayd.core.observe import (
    AlarmChanged,
    GatewayEvent,
    Observers,
    PartSent,
    ReportMatched,
    SendFailed,
)
from gatewayd.fleet.alarms import AlarmBook, AlarmKind, AlarmMonitor

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ICCID = "89340710000000000013"


@dataclasses.dataclass
class FakeModem:
    name: str = "m1"
    state: ModemState = ModemState.READY
    state_reason: str = "registered (home)"
    info: ModemInfo = dataclasses.field(
        default_factory=lambda: ModemInfo(
            iccid=ICCID, signal_dbm=-70, registration="home", storage_used=1, storage_total=100
        )
    )

    @property
    def identity(self) -> str | None:
        return self.info.iccid


@dataclasses.dataclass
class FakeWorker:
    modem: Any
    out_of_service: str | None = None


class FakeStore:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []

    async def record_event(self, event: str, data: dict[str, object], now: datetime) -> None:
        self.events.append((event, data))


@dataclasses.dataclass
class Rig:
    monitor: AlarmMonitor
    worker: FakeWorker
    store: FakeStore
    clock: ManualClock
    seen: list[GatewayEvent]
    workers: list[FakeWorker]

    def at(self, seconds: float) -> list[tuple[AlarmKind, bool]]:
        """Move the clock (without running the monitor's timer) and check once."""
        self.clock._now = T0 + timedelta(seconds=seconds)
        return [(AlarmKind(c.alarm.kind), c.raised) for c in self.monitor.check()]


@pytest.fixture
def rig() -> Rig:
    clock = ManualClock(T0)
    store = FakeStore()
    observers = Observers()
    seen: list[GatewayEvent] = []
    observers.subscribe(seen.append)
    worker = FakeWorker(FakeModem())
    workers = [worker]
    config = AlarmsConfig(raise_after_seconds=60, clear_after_seconds=120, error_window=4)
    monitor = AlarmMonitor(
        config,
        workers=lambda: workers,
        store=store,  # type: ignore[arg-type]
        observers=observers,
        clock=clock,
    )
    return Rig(monitor, worker, store, clock, seen, workers)


def test_book_needs_the_condition_to_hold_and_to_be_gone_for_a_while() -> None:
    book = AlarmBook(raise_after=60, clear_after=120)
    k = AlarmKind.NOT_REGISTERED

    def at(seconds: float, holds: bool) -> bool | None:
        change = book.observe("m1", k, holds, "x", T0 + timedelta(seconds=seconds))
        return None if change is None else change.raised

    assert at(0, True) is None
    assert at(30, False) is None  # a blip: the clock restarts
    assert at(40, True) is None
    assert at(99, True) is None
    assert at(100, True) is True
    assert at(150, False) is None
    assert at(200, True) is None  # back before the clear time: still raised, no flap
    assert at(210, False) is None
    assert at(329, False) is None
    assert at(330, False) is False
    assert book.active() == []


async def test_not_registered_raises_and_clears_with_webhooks(rig: Rig) -> None:
    rig.worker.modem.state = ModemState.DEGRADED
    rig.worker.modem.state_reason = "not registered (searching)"
    assert rig.at(0) == []
    assert rig.at(60) == [(AlarmKind.NOT_REGISTERED, True)]
    assert [a.kind for a in rig.monitor.active()] == [AlarmKind.NOT_REGISTERED]
    rig.worker.modem.state = ModemState.READY
    assert rig.at(100) == []
    assert rig.at(220) == [(AlarmKind.NOT_REGISTERED, False)]
    await rig.monitor.stop()
    assert [e for e, _ in rig.store.events] == ["modem.alarm", "modem.alarm_cleared"]
    assert rig.store.events[0][1]["sim"] == ICCID
    assert rig.store.events[0][1]["alarm"] == "not_registered"
    changed = [e for e in rig.seen if isinstance(e, AlarmChanged)]
    assert [(e.alarm, e.raised) for e in changed] == [
        ("not_registered", True),
        ("not_registered", False),
    ]


async def test_storage_uses_two_thresholds(rig: Rig) -> None:
    m = rig.worker.modem
    m.info = dataclasses.replace(m.info, storage_used=80)
    assert rig.at(0) == [(AlarmKind.STORAGE_HIGH, True)]
    m.info = dataclasses.replace(m.info, storage_used=75)  # below 80 %, above 70 %: held
    assert rig.at(500) == []
    m.info = dataclasses.replace(m.info, storage_used=60)
    assert rig.at(510) == []
    assert rig.at(630) == [(AlarmKind.STORAGE_HIGH, False)]


async def test_signal_low_for_minutes(rig: Rig) -> None:
    m = rig.worker.modem
    m.info = dataclasses.replace(m.info, signal_dbm=-109)
    assert rig.at(0) == []
    assert rig.at(299) == []
    assert rig.at(300) == [(AlarmKind.SIGNAL_LOW, True)]
    m.info = dataclasses.replace(m.info, signal_dbm=-103)  # between the thresholds: held
    assert rig.at(1000) == []
    m.info = dataclasses.replace(m.info, signal_dbm=-90)
    assert rig.at(1001) == []
    assert rig.at(1121) == [(AlarmKind.SIGNAL_LOW, False)]


async def test_pin_sim_fault_and_gone(rig: Rig) -> None:
    m = rig.worker.modem
    m.state, m.state_reason = ModemState.FAILED, "SIM PIN required and none configured"
    assert rig.at(0) == [(AlarmKind.PIN_NEEDED, True)]
    m.state, m.state_reason = ModemState.READY, "registered (home)"
    rig.worker.out_of_service = "cms 50: SIM or modem fault"
    assert rig.at(10) == [(AlarmKind.SIM_FAULT, True)]
    rig.workers.clear()  # the stick was pulled: detached
    assert rig.at(20) == []
    assert rig.at(80) == [(AlarmKind.MODEM_GONE, True)]


async def test_no_reports_and_error_rate_come_from_send_events(rig: Rig) -> None:
    rig.monitor.start()
    observers = rig.monitor._observers
    for i in range(10):
        observers.emit(PartSent(f"id{i}", 1, "m1", ICCID, 2.0, T0))
    assert rig.monitor.book.raised("m1", AlarmKind.NO_REPORTS)
    observers.emit(ReportMatched("id9", 1, "m1", True, True, "delivered", T0))  # type: ignore[arg-type]
    assert rig.at(200) == [(AlarmKind.NO_REPORTS, False)]
    for i in range(3):
        observers.emit(SendFailed(f"f{i}", "m1", "cms_500", T0))
    assert rig.monitor.book.raised("m1", AlarmKind.SEND_ERRORS)
    await rig.monitor.stop()
