"""Monthly quotas: a SIM that sent its ``monthly_quota`` parts this calendar month (UTC)
pauses itself until the month turns, then resumes.

Counted parts come from the store at start and at each month turn, then from ``PartSent``
events. The check is at part granularity: a message whose parts were already reserved when
the quota was reached finishes (its remaining parts go out); no new message starts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from drivers.clock import Clock
from gatewayd.config.model import GatewayConfig
from gatewayd.core import Gateway
from gatewayd.core.observe import GatewayEvent, PartSent
from gatewayd.store.quota_base import SentCounts

log = structlog.get_logger(__name__)

CHECK_SECONDS = 60.0


def month_start(now: datetime) -> datetime:
    """The first instant of ``now``'s calendar month, UTC."""
    now = now.astimezone(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


@dataclass
class _Month:
    quota: int
    start: datetime
    sent: int
    paused: bool = False


class QuotaMonitor:
    """Keeps each quota SIM's count for the month and pauses/resumes its modem."""

    def __init__(
        self, config: GatewayConfig, gateway: Gateway, counts: SentCounts, *, clock: Clock
    ) -> None:
        self._quotas = {
            s.iccid: s.monthly_quota
            for s in config.sims
            if s.iccid is not None and s.monthly_quota is not None
        }
        self._gateway = gateway
        self._counts = counts
        self._clock = clock
        self._months: dict[str, _Month] = {}
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._unsubscribe = gateway.observers.subscribe(self._on_event)

    def sent_this_month(self, sim: str | None) -> tuple[int, int] | None:
        """``(sent, quota)`` of a SIM with a quota, else None."""
        month = self._months.get(sim or "")
        return (month.sent, month.quota) if month is not None else None

    async def start(self) -> None:
        """Load this month's counts (before the modems send), then keep them."""
        await self._load()
        self._task = asyncio.create_task(self._run(), name="fleet-quota")

    async def stop(self) -> None:
        """Stop keeping counts."""
        self._unsubscribe()
        tasks = [t for t in (self._task, *self._pending) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _load(self) -> None:
        start = month_start(self._clock.now())
        for sim, quota in self._quotas.items():
            month = self._months.get(sim)
            if month is None or month.start != start:
                sent = await self._counts.sent_since(sim, start)
                paused = month.paused if month is not None else False
                self._months[sim] = _Month(quota, start, sent, paused)
        self._enforce()

    async def _run(self) -> None:
        while True:
            await self._clock.sleep(CHECK_SECONDS)
            try:
                await self._load()
            except Exception:
                log.exception("quota.load_failed")

    def _on_event(self, event: GatewayEvent) -> None:
        if isinstance(event, PartSent) and (month := self._months.get(event.sim)) is not None:
            month.sent += 1
            self._enforce()

    def _enforce(self) -> None:
        for worker in self._gateway.workers:
            month = self._months.get(worker.modem.identity or "")
            if month is None:
                continue
            over = month.sent >= month.quota
            if over and not month.paused:
                month.paused = True
                log.warning("quota.reached", modem=worker.name, sent=month.sent, quota=month.quota)
                # At once, inside the PartSent of the last part: before the worker's next step.
                worker.paused = True
            elif not over and month.paused:
                month.paused = False
                log.info("quota.new_month", modem=worker.name, quota=month.quota)
                self._spawn(self._gateway.resume(worker.name))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
