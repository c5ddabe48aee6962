import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from drivers.clock import ManualClock, OffsetClock, SystemClock


async def test_manual_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    woke: list[tuple[str, datetime]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("late", 30), ("early", 5))]
    await clock.advance(10)
    assert woke == [("early", datetime(2026, 3, 1, 0, 0, 5, tzinfo=UTC))]
    await clock.advance(20)
    assert [n for n, _ in woke] == ["early", "late"]
    assert woke[1][1] == datetime(2026, 3, 1, 0, 0, 30, tzinfo=UTC)
    await asyncio.gather(*tasks)
    assert clock.now() == datetime(2026, 3, 1, 0, 0, 30, tzinfo=UTC)


async def test_manual_clock_chained_sleeps_within_one_advance() -> None:
    clock = ManualClock()
    start = clock.now()
    ticks: list[datetime] = []

    async def ticker() -> None:
        for _ in range(3):
            await clock.sleep(60)
            ticks.append(clock.now())

    task = asyncio.create_task(ticker())
    await clock.advance(200)
    await task
    assert ticks == [start + timedelta(seconds=60 * i) for i in (1, 2, 3)]


async def test_manual_clock_cancelled_sleeper_is_skipped() -> None:
    clock = ManualClock()
    task = asyncio.create_task(clock.sleep(5))
    await asyncio.sleep(0)
    assert clock.pending == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending == 0
    await clock.advance(10)


async def test_sleep_until_past_returns_at_once() -> None:
    clock = ManualClock()
    await asyncio.wait_for(clock.sleep_until(clock.now() - timedelta(hours=1)), timeout=1)


def test_manual_clock_rejects_naive_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 1, 1))


def test_system_clock_is_utc() -> None:
    assert SystemClock().now().tzinfo is UTC


def test_offset_clock_reads_the_reference_time() -> None:
    clock = OffsetClock()
    assert abs((clock.now() - SystemClock().now()).total_seconds()) < 5
    clock.set_offset(-120.0)
    behind = SystemClock().now() - clock.now()
    assert 115 < behind.total_seconds() < 125
    assert abs(clock.timestamp() - clock.now().timestamp()) < 5
    assert clock.offset.total_seconds() == -120.0
