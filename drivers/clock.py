"""The one clock that drives every wait and deadline (DESIGN.md, Decisions: Time).

Limiters, ``send_at``, expiry, retries, report timeouts, flows and the simulator's delays
all ask a :class:`Clock` for the time and for sleeps, so tests swap in :class:`ManualClock`
and move time forward without waiting. Real I/O timeouts (a modem that does not answer)
stay on the event loop's own clock: they guard against hardware, not business time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What code that waits or expires needs from time."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def timestamp(self) -> float:
        """The current time as POSIX seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Wait until this clock reads ``when`` (returns at once if it is past)."""
        ...


class SystemClock:
    """Wall-clock time and real sleeps."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def timestamp(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, when: datetime) -> None:
        await asyncio.sleep(max(0.0, (when - self.now()).total_seconds()))


class OffsetClock(SystemClock):
    """Wall-clock time corrected by an offset that a reference clock sets (a shared database
    on several hosts), so that every node reads the same time whatever its own clock says."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    @property
    def offset(self) -> timedelta:
        """How far the reference is ahead of this host's clock."""
        return self._offset

    def set_offset(self, seconds: float) -> None:
        """Follow the reference from now on: it reads ``seconds`` ahead of this host."""
        self._offset = timedelta(seconds=seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def timestamp(self) -> float:
        return time.time() + self._offset.total_seconds()


class ManualClock:
    """A clock that moves only when told to: deterministic tests of anything that waits.

    Sleepers are woken in deadline order by :meth:`advance`, which yields to the event loop
    after each wake-up so that the woken tasks run (and may sleep again) before time moves on.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock start must be timezone-aware")
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    def timestamp(self) -> float:
        return self._now.timestamp()

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + timedelta(seconds=max(0.0, seconds)))

    async def sleep_until(self, when: datetime) -> None:
        if when <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (when, next(self._seq), fut))
        await fut

    @property
    def pending(self) -> int:
        """How many sleepers are waiting (cancelled ones excluded)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float, *, settle: int = 20) -> None:
        """Move time forward by ``seconds``, waking every sleeper whose deadline passes."""
        await self.advance_to(self._now + timedelta(seconds=seconds), settle=settle)

    async def advance_to(self, when: datetime, *, settle: int = 20) -> None:
        """Move time forward to ``when``, waking sleepers in deadline order."""
        await _settle(settle)
        while self._sleepers and self._sleepers[0][0] <= when:
            deadline, _, fut = heapq.heappop(self._sleepers)
            if fut.done():
                continue
            self._now = max(self._now, deadline)
            fut.set_result(None)
            await _settle(settle)
        self._now = max(self._now, when)
        await _settle(settle)


async def _settle(rounds: int) -> None:
    # Each round lets every ready task run one step; woken tasks usually need a few.
    for _ in range(rounds):
        await asyncio.sleep(0)
