"""The status page's parts without a server: signal bars, the chart, login sessions."""

from __future__ import annotations

from datetime import timedelta

from drivers.clock import ManualClock
from gatewayd.api.sessions import MAX_SESSIONS, Sessions
from gatewayd.api.status import Bar, build_chart, inbound_row, signal_bars
from gatewayd.core import InboundView
from gatewayd.metrics import Activity

TOKEN = b"token-0123456789"


def test_signal_bars_follow_handset_steps() -> None:
    steps = (None, -113, -104, -103, -93, -83, -73, -51)
    assert [signal_bars(d) for d in steps] == [0, 0, 0, 1, 2, 3, 4, 4]


def test_numbers_are_masked_only_when_the_logs_mask_them() -> None:
    clock = ManualClock()
    view = InboundView(
        1, "i1", "+34622000002", "soy +34622000002", "m1", "SIM", False, 1, 1, clock.now()
    )
    masked = inbound_row(view, mask=True)
    assert (masked.sender, masked.text) == ("+3462*****02", "soy +3462*****02")
    plain = inbound_row(view, mask=False)
    assert (plain.sender, plain.text) == ("+34622000002", "soy +34622000002")


def test_an_empty_day_draws_no_bars_and_labels_every_sixth_hour() -> None:
    clock = ManualClock()
    chart = build_chart(Activity(clock.now()).summary(clock.now()))
    assert chart.bars == ()
    assert chart.peak == 0
    assert len(chart.titles) == 24
    assert len(chart.labels) == 4


def test_bars_scale_to_the_busiest_hour() -> None:
    clock = ManualClock()
    now = clock.now()
    activity = Activity(now)
    for _ in range(10):
        activity.add(now - timedelta(hours=1), "sent")
    for _ in range(5):
        activity.add(now, "sent")
        activity.add(now, "delivered")
    activity.add(now, "failed")
    activity.add(now, "optouts")
    chart = build_chart(activity.summary(now), width=240, height=130)
    plot = 100  # height minus the strip for opt-outs and labels
    by_kind: dict[str, list[Bar]] = {}
    for bar in chart.bars:
        by_kind.setdefault(bar.kind, []).append(bar)
    assert chart.peak == 10
    assert [b.height for b in by_kind["sent"]] == [100.0, 50.0]
    assert by_kind["sent"][0].y == 0.0
    [delivered] = by_kind["delivered"]
    [failed] = by_kind["failed"]
    assert (delivered.height, failed.height) == (50.0, 10.0)
    # Failed sits on top of delivered, both inside the current hour's column.
    assert failed.y + failed.height == delivered.y
    assert delivered.y + delivered.height == plot
    assert by_kind["optouts"][0].x > by_kind["sent"][0].x
    assert "sent 5, delivered 5, failed 1, opt-outs 1" in chart.titles[-1][2]


async def test_a_session_is_opaque_expires_and_dies_with_its_token() -> None:
    clock = ManualClock()
    sessions = Sessions(clock, lifetime=timedelta(hours=1))
    sid = sessions.open(TOKEN)
    assert TOKEN.decode() not in sid
    assert len(sid) >= 40
    assert sessions.valid(sid, (TOKEN,))
    assert not sessions.valid(sid + "x", (TOKEN,))
    assert not sessions.valid(None, (TOKEN,))
    assert not sessions.valid(sid, (b"another-token",))
    # A session whose token went is gone for good, even if the token comes back.
    assert not sessions.valid(sid, (TOKEN,))
    other = sessions.open(TOKEN)
    await clock.advance(3600)
    assert not sessions.valid(other, (TOKEN,))


def test_logout_closes_and_the_oldest_session_makes_room() -> None:
    clock = ManualClock()
    sessions = Sessions(clock)
    first = sessions.open(TOKEN)
    second = sessions.open(TOKEN)
    sessions.close(second)
    assert not sessions.valid(second, (TOKEN,))
    for _ in range(MAX_SESSIONS):
        sessions.open(TOKEN)
    assert len(sessions) == MAX_SESSIONS
    assert not sessions.valid(first, (TOKEN,))
