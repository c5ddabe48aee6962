"""The warm-up schedule: first-day limit, a steady rise, the SIM's own limits at the end."""

from __future__ import annotations

from datetime import date, timedelta

from gatewayd.config.model import Limits, WarmupConfig
from gatewayd.fleet.warmup import day_limit, warm_limits

W = WarmupConfig(start="2026-11-01", days=10, first_day=20)
START = date(2026, 11, 1)


def test_rises_from_first_day_to_the_full_limit() -> None:
    days = [day_limit(W, 1000, START + timedelta(days=k)) or 0 for k in range(12)]
    assert days[0] == 20
    assert days[5] == 20 + (1000 - 20) * 5 // 10
    assert days[10:] == [1000, 1000]
    assert days == sorted(days)  # never falls back


def test_before_start_holds_the_first_day_and_caps_hour_and_minute() -> None:
    limits = warm_limits(Limits(max_per_minute=6, max_per_hour=200, max_per_day=1000), W, START)
    assert (limits.max_per_minute, limits.max_per_hour, limits.max_per_day) == (6, 20, 20)
    early = warm_limits(Limits(max_per_day=None), W, START - timedelta(days=3))
    assert early.max_per_day == 20
    assert warm_limits(Limits(), W, START + timedelta(days=30)) == Limits()
