"""The quota month is the UTC calendar month, whatever the time zone of the moment given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from gatewayd.fleet.quota import month_start


def test_month_start_is_utc() -> None:
    assert month_start(datetime(2026, 11, 23, 21, 30, tzinfo=UTC)) == datetime(
        2026, 11, 1, tzinfo=UTC
    )
    # 00:30 on 1 December in Madrid (UTC+1) is still November in UTC.
    madrid = timezone(timedelta(hours=1))
    assert month_start(datetime(2026, 12, 1, 0, 30, tzinfo=madrid)) == datetime(
        2026, 11, 1, tzinfo=UTC
    )
