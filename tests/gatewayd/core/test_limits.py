"""Per-SIM limits: sliding windows counted in parts, whole messages reserved, across restarts."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from drivers.clock import ManualClock
from gatewayd.config.model import Limits
from gatewayd.core import MessageStatus, SubmitRequest
from tests.gatewayd.core.fakes import FakeModem, config, modem_config, start

LONG = "y" * 400  # three parts


def max_in_window(times: list[datetime], seconds: float) -> int:
    """The most sends any window [t, t + seconds) holds."""
    span = timedelta(seconds=seconds)
    return max((sum(1 for u in times if t <= u < t + span) for t in times), default=0)


async def test_never_more_than_max_per_minute_in_any_sliding_minute(
    tmp_path: Path, clock: ManualClock
) -> None:
    limits = Limits(max_per_minute=6, max_per_hour=None, max_per_day=None)
    h = await start(
        config(tmp_path, modem_config("m1", limits=limits)), clock, [FakeModem("m1", "S1", clock)]
    )
    m1 = h.modems["m1"]
    try:
        for n in range(20):
            await h.gateway.submit(SubmitRequest(to=f"+346000001{n:02d}", text=f"n{n}"))
        await m1.wait_sends(6)
        await h.idle()
        assert len(m1.sends) == 6
        for _ in range(40):  # 280 s in uneven steps
            await h.advance(7)
        times = [s.at for s in m1.sends]
        assert len(times) == 20
        assert max_in_window(times, 60) == 6
        # It kept each SIM busy up to its limit: the fourth batch starts at 3 minutes.
        assert times[18] - times[0] == timedelta(seconds=180)
    finally:
        await h.close()


async def test_all_parts_of_a_message_are_reserved_before_part_one(
    tmp_path: Path, clock: ManualClock
) -> None:
    limits = Limits(max_per_minute=4, max_per_hour=None, max_per_day=None)
    h = await start(
        config(tmp_path, modem_config("m1", limits=limits)), clock, [FakeModem("m1", "S1", clock)]
    )
    m1 = h.modems["m1"]
    try:
        first = await h.gateway.submit(SubmitRequest(to="+34600000001", text=LONG))
        second = await h.gateway.submit(SubmitRequest(to="+34600000002", text=LONG))
        await m1.wait_sends(3)
        await h.idle()
        # One slot is left in this minute, but the next message needs three: it waits.
        await h.advance(59)
        assert len(m1.sends) == 3
        await h.advance(1)
        await m1.wait_sends(6)
        assert [s.at for s in m1.sends[3:]] == [clock.now()] * 3
        assert (await h.gateway.get_message(first.id)).status is MessageStatus.SENT
        await h.idle()
        assert (await h.gateway.get_message(second.id)).status is MessageStatus.SENT
    finally:
        await h.close()


async def test_limits_hold_across_a_restart(tmp_path: Path, clock: ManualClock) -> None:
    limits = Limits(max_per_minute=None, max_per_hour=5, max_per_day=None)
    cfg = config(tmp_path, modem_config("m1", limits=limits))
    h = await start(cfg, clock, [FakeModem("m1", "SIM-A", clock)])
    for n in range(5):
        await h.gateway.submit(SubmitRequest(to=f"+3460000010{n}", text="before restart"))
    await h.modems["m1"].wait_sends(5)
    await h.idle()
    await h.close()

    await clock.advance(600)
    # Same SIM in another port under another name: the SIM, not the port, holds the count.
    cfg2 = config(tmp_path, modem_config("other", limits=limits))
    h2 = await start(cfg2, clock, [FakeModem("other", "SIM-A", clock)])
    fresh = h2.modems["other"]
    try:
        await h2.gateway.submit(SubmitRequest(to="+34600000200", text="after restart"))
        await h2.idle()
        assert fresh.sends == []
        await h2.advance(3000 - 1)
        assert fresh.sends == []
        await h2.advance(1)
        await fresh.wait_sends(1)
        assert fresh.sends[0].at - h.modems["m1"].sends[0].at == timedelta(hours=1)
    finally:
        await h2.close()


async def test_minimum_gap_spaces_every_part(tmp_path: Path, clock: ManualClock) -> None:
    limits = Limits(max_per_minute=None, max_per_hour=None, max_per_day=None, min_gap_seconds=4)
    h = await start(
        config(tmp_path, modem_config("m1", limits=limits)), clock, [FakeModem("m1", "S1", clock)]
    )
    m1 = h.modems["m1"]
    try:
        await h.gateway.submit(SubmitRequest(to="+34600000001", text=LONG))
        await h.gateway.submit(SubmitRequest(to="+34600000002", text="short"))
        await m1.wait_sends(1)
        for _ in range(6):
            await h.advance(2)
        await m1.wait_sends(4)
        gaps = [b.at - a.at for a, b in zip(m1.sends, m1.sends[1:], strict=False)]
        assert gaps == [timedelta(seconds=4)] * 3
    finally:
        await h.close()


async def test_reload_applies_new_limits_and_names_what_changed(
    tmp_path: Path, clock: ManualClock
) -> None:
    tight = Limits(max_per_minute=1, max_per_hour=None, max_per_day=None)
    cfg = config(tmp_path, modem_config("m1", limits=tight))
    h = await start(cfg, clock, [FakeModem("m1", "S1", clock)])
    m1 = h.modems["m1"]
    try:
        for n in range(3):
            await h.gateway.submit(SubmitRequest(to=f"+3460000010{n}", text=f"r{n}"))
        await m1.wait_sends(1)
        await h.idle()
        assert len(m1.sends) == 1
        loose = Limits(max_per_minute=3, max_per_hour=None, max_per_day=None)
        changed = h.gateway.reload(config(tmp_path, modem_config("m1", limits=loose)))
        assert changed == ["modems.m1"]
        await m1.wait_sends(3)
        assert [s.at for s in m1.sends] == [clock.now()] * 3
    finally:
        await h.close()
