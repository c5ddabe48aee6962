"""Monthly quotas: the UTC calendar month; a SIM at its quota never sends another part, also
right after a restart, and its count follows the store (other nodes' sends) as it changes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from drivers.clock import ManualClock
from drivers.modem import ModemState
from gatewayd.config.model import GatewayConfig, SimConfig
from gatewayd.core import SubmitRequest
from gatewayd.fleet.quota import CHECK_SECONDS, QuotaMonitor, month_start
from gatewayd.store.quota_sqlite import SqliteSentCounts
from tests.gatewayd.core.fakes import TIMEOUT, FakeModem, Harness, config, modem_config, start


def test_month_start_is_utc() -> None:
    assert month_start(datetime(2026, 11, 23, 21, 30, tzinfo=UTC)) == datetime(
        2026, 11, 1, tzinfo=UTC
    )
    # 00:30 on 1 December in Madrid (UTC+1) is still November in UTC.
    madrid = timezone(timedelta(hours=1))
    assert month_start(datetime(2026, 12, 1, 0, 30, tzinfo=madrid)) == datetime(
        2026, 11, 1, tzinfo=UTC
    )


SIM = "8934001"
OTHER_SIM = "8934002"
TO = "+34600000001"


@dataclass
class FakeCounts:
    """A SentCounts whose answers the test sets (another node's sends) and may hold back."""

    sent: dict[str, int] = field(default_factory=dict)
    answer: asyncio.Event = field(default_factory=asyncio.Event)
    answered: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.answer.set()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def sent_since(self, identity: str, since: datetime) -> int:
        async with asyncio.timeout(TIMEOUT):
            await self.answer.wait()
        self.answered += 1
        self._changed.set()
        return self.sent.get(identity, 0)

    async def wait_answered(self, n: int) -> None:
        """Until ``n`` reads were answered and the monitor applied them.

        The monitor applies a count in the same step the read returns in: a waiter woken
        by the event runs after that step.
        """
        async with asyncio.timeout(TIMEOUT):
            while self.answered < n:
                self._changed.clear()
                await self._changed.wait()


def quota_config(tmp_path: Path, quota: int = 3) -> GatewayConfig:
    return config(tmp_path, modem_config("m1"), sims=(SimConfig(iccid=SIM, monthly_quota=quota),))


async def submit(h: Harness, n: int) -> None:
    for i in range(n):
        await h.gateway.submit(SubmitRequest(to=TO, text=f"q{i}"))


async def test_a_sim_at_its_quota_sends_nothing_after_a_restart(tmp_path: Path) -> None:
    # The ICCID is read only as the modem comes up, after the monitor started: the SIM must
    # be paused as it becomes READY, before its worker takes the next message.
    clock = ManualClock(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    cfg = quota_config(tmp_path)
    h = await start(cfg, clock, [FakeModem("m1", SIM, clock)])
    counts = SqliteSentCounts(cfg.database)
    await counts.open()
    monitor = QuotaMonitor(cfg, h.gateway, counts, clock=clock)
    await monitor.start()
    try:
        await submit(h, 4)
        await h.modems["m1"].wait_sends(3)
        await h.idle()
        assert len(h.modems["m1"].sends) == 3
        assert monitor.sent_this_month(SIM) == (3, 3)
    finally:
        await monitor.stop()
        await counts.close()
        await h.close()

    modem = FakeModem("m1", SIM, clock, state=ModemState.OPENING)
    h = await start(cfg, clock, [modem])
    await counts.open()
    monitor = QuotaMonitor(cfg, h.gateway, counts, clock=clock)
    await monitor.start()
    try:
        assert modem.identity is None
        modem.set_state(ModemState.READY)
        await h.idle()
        assert modem.sends == []
        assert h.gateway.workers[0].paused
        assert monitor.sent_this_month(SIM) == (3, 3)
        assert h.gateway.queue_depth() == 1
    finally:
        await monitor.stop()
        await counts.close()
        await h.close()


async def test_a_sim_that_comes_up_is_held_until_its_count_is_read(tmp_path: Path) -> None:
    # The SIM sent its quota on another node since this one started (PostgreSQL): the
    # count read at start says 0, the store says 3 by the time the modem comes up here.
    clock = ManualClock(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    cfg = quota_config(tmp_path)
    modem = FakeModem("m1", SIM, clock, state=ModemState.OPENING)
    h = await start(cfg, clock, [modem])
    counts = FakeCounts()
    monitor = QuotaMonitor(cfg, h.gateway, counts, clock=clock)
    await monitor.start()
    try:
        assert monitor.sent_this_month(SIM) == (0, 3)
        await submit(h, 1)
        counts.sent[SIM] = 3
        counts.answer.clear()
        modem.set_state(ModemState.READY)
        assert h.gateway.workers[0].paused  # held inside the state change itself
        await h.idle()
        assert modem.sends == []
        counts.answer.set()
        await counts.wait_answered(2)
        assert monitor.sent_this_month(SIM) == (3, 3)
        await h.idle()
        assert modem.sends == []
        assert h.gateway.workers[0].paused
    finally:
        await monitor.stop()
        await h.close()


async def test_a_held_sim_under_its_quota_sends_once_its_count_is_read(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    cfg = quota_config(tmp_path)
    modem = FakeModem("m1", SIM, clock, state=ModemState.OPENING)
    h = await start(cfg, clock, [modem])
    counts = FakeCounts({SIM: 1})
    monitor = QuotaMonitor(cfg, h.gateway, counts, clock=clock)
    await monitor.start()
    try:
        await submit(h, 1)
        counts.sent[SIM] = 2
        counts.answer.clear()
        modem.set_state(ModemState.READY)
        await h.idle()
        assert modem.sends == []
        counts.answer.set()
        await modem.wait_sends(1)
        await h.idle()
        assert monitor.sent_this_month(SIM) == (3, 3)
        assert h.gateway.workers[0].paused
    finally:
        await monitor.stop()
        await h.close()


async def test_the_count_is_read_again_every_check(tmp_path: Path) -> None:
    # A SIM already up here whose count grows on another node behind the monitor's back.
    clock = ManualClock(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    cfg = quota_config(tmp_path)
    h = await start(cfg, clock, [FakeModem("m1", SIM, clock)])
    counts = FakeCounts({SIM: 1})
    monitor = QuotaMonitor(cfg, h.gateway, counts, clock=clock)
    await monitor.start()
    try:
        await counts.wait_answered(2)  # at start, and as the monitor saw the modem up
        assert not h.gateway.workers[0].paused
        await submit(h, 1)
        await h.modems["m1"].wait_sends(1)
        await h.idle()
        assert monitor.sent_this_month(SIM) == (2, 3)
        counts.sent[SIM] = 3
        await h.advance(CHECK_SECONDS)
        await counts.wait_answered(3)
        assert monitor.sent_this_month(SIM) == (3, 3)
        assert h.gateway.workers[0].paused
        await submit(h, 1)
        await h.idle()
        assert len(h.modems["m1"].sends) == 1
    finally:
        await monitor.stop()
        await h.close()


async def test_a_read_never_lowers_what_this_node_counted(tmp_path: Path) -> None:
    # A read that started before this node's last PartSent was committed may miss it.
    clock = ManualClock(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    cfg = quota_config(tmp_path)
    h = await start(cfg, clock, [FakeModem("m1", SIM, clock)])
    counts = FakeCounts({SIM: 2})
    monitor = QuotaMonitor(cfg, h.gateway, counts, clock=clock)
    await monitor.start()
    try:
        await counts.wait_answered(2)  # at start, and as the monitor saw the modem up
        assert not h.gateway.workers[0].paused
        await submit(h, 1)
        await h.modems["m1"].wait_sends(1)
        await h.idle()
        assert h.gateway.workers[0].paused
        await h.advance(CHECK_SECONDS)
        await counts.wait_answered(3)
        assert monitor.sent_this_month(SIM) == (3, 3)
        assert h.gateway.workers[0].paused
    finally:
        await monitor.stop()
        await h.close()


async def test_a_new_month_resumes_the_sim(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 11, 30, 23, 59, 30, tzinfo=UTC))
    cfg = quota_config(tmp_path)
    h = await start(cfg, clock, [FakeModem("m1", SIM, clock)])
    counts = FakeCounts({SIM: 3})
    monitor = QuotaMonitor(cfg, h.gateway, counts, clock=clock)
    await monitor.start()
    try:
        await h.idle()
        assert h.gateway.workers[0].paused
        await submit(h, 1)
        await h.idle()
        assert h.modems["m1"].sends == []
        counts.sent[SIM] = 0  # nothing since 1 December
        await h.advance(CHECK_SECONDS)
        await h.modems["m1"].wait_sends(1)
        await h.idle()
        assert monitor.sent_this_month(SIM) == (1, 3)
        assert not h.gateway.workers[0].paused
    finally:
        await monitor.stop()
        await h.close()


async def test_another_sim_in_the_modem_resumes_it(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    cfg = quota_config(tmp_path)
    modem = FakeModem("m1", SIM, clock)
    h = await start(cfg, clock, [modem])
    monitor = QuotaMonitor(cfg, h.gateway, FakeCounts({SIM: 3}), clock=clock)
    await monitor.start()
    try:
        await h.idle()
        assert h.gateway.workers[0].paused
        await submit(h, 1)
        modem.set_state(ModemState.GONE)
        modem.sim = OTHER_SIM  # no quota
        modem.set_state(ModemState.READY)
        await modem.wait_sends(1)
        await h.idle()
        assert not h.gateway.workers[0].paused
    finally:
        await monitor.stop()
        await h.close()
