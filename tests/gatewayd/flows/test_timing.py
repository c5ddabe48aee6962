"""Quiet hours across a number's zones, caps and gaps, as pure functions."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewayd.flows.timing import Caps, QuietHours, resolve_send_at, zones_for

QUIET = QuietHours.parse("21:00", "09:00")
NO_CAPS = Caps(per_day=100, per_week=100, min_gap=timedelta(0))
MADRID = zoneinfo.ZoneInfo("Europe/Madrid")
CANARY = zoneinfo.ZoneInfo("Atlantic/Canary")


def at(h: int, m: int = 0, day: int = 5) -> datetime:
    return datetime(2026, 1, day, h, m, tzinfo=UTC)


def test_zones_come_from_the_event_else_the_number_else_the_default() -> None:
    assert [z.key for z in zones_for("America/Bogota", "+34600000001", "UTC")] == ["America/Bogota"]
    assert {z.key for z in zones_for(None, "+34600000001", "UTC")} == {
        "Europe/Madrid",
        "Atlantic/Canary",
    }
    assert [z.key for z in zones_for(None, "+4915112345678", "UTC")] == ["Europe/Berlin"]
    assert [z.key for z in zones_for(None, "not a number", "Europe/Lisbon")] == ["Europe/Lisbon"]


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (at(12), at(12)),  # daytime everywhere
        (at(8, 30), at(9)),  # Madrid 09:30 but Canaries 08:30: wait for the Canaries
        (at(20, 30), at(9, day=6)),  # Canaries 20:30 but Madrid 21:30: next morning
        (at(23), at(9, day=6)),
        (at(2), at(9)),
    ],
)
def test_the_window_is_the_intersection_of_the_zones(moment: datetime, expected: datetime) -> None:
    got = resolve_send_at(
        moment,
        quiet=QUIET,
        zones=[MADRID, CANARY],
        caps=NO_CAPS,
        marketing=True,
        marketing_times=[],
        all_times=[],
    )
    assert got == expected


def test_windows_that_never_meet_are_an_error() -> None:
    tight = QuietHours.parse("10:00", "09:00")  # one allowed hour a day
    zones = [zoneinfo.ZoneInfo("Pacific/Honolulu"), zoneinfo.ZoneInfo("Europe/Madrid")]
    with pytest.raises(ValueError, match="every zone"):
        resolve_send_at(
            at(12),
            quiet=tight,
            zones=zones,
            caps=NO_CAPS,
            marketing=True,
            marketing_times=[],
            all_times=[],
        )


def test_caps_per_day_and_week_and_the_gap() -> None:
    caps = Caps(per_day=2, per_week=3, min_gap=timedelta(minutes=30))
    sent = [at(10, day=1), at(10, day=5), at(11, day=5)]

    def when(moment: datetime, marketing: bool = True) -> datetime:
        return resolve_send_at(
            moment,
            quiet=None,
            zones=[MADRID],
            caps=caps,
            marketing=marketing,
            marketing_times=sent,
            all_times=sent,
        )

    # Two on the 5th already: the third waits for the 5th 10:00 to leave the day window;
    # the week holds three from the 1st 10:00, so it must also wait until the 8th 10:00.
    assert when(at(12, day=5)) == at(10, day=8)
    # Transactional ignores the caps but keeps the gap.
    assert when(at(11, 10, day=5), marketing=False) == at(11, 30, day=5)


@given(
    st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
    )
)
def test_the_result_is_never_quiet_anywhere_and_never_early(moment: datetime) -> None:
    got = resolve_send_at(
        moment,
        quiet=QUIET,
        zones=[MADRID, CANARY],
        caps=NO_CAPS,
        marketing=True,
        marketing_times=[],
        all_times=[],
    )
    assert moment <= got < moment + timedelta(hours=14)
    for zone in (MADRID, CANARY):
        assert not QUIET.quiet(got.astimezone(zone).time())


def test_a_send_already_scheduled_later_counts_against_the_cap() -> None:
    # A marketing message deferred to tomorrow 09:00 by quiet hours; one more today at noon
    # would make two within 24 h, so it goes 24 h after tomorrow's.
    caps = Caps(per_day=1, per_week=10, min_gap=timedelta(0))
    later = at(9, day=6)
    got = resolve_send_at(
        at(12),
        quiet=None,
        zones=[MADRID],
        caps=caps,
        marketing=True,
        marketing_times=[later],
        all_times=[later],
    )
    assert got == at(9, day=7)
