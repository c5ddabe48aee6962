"""Warm-up: a new SIM's daily limit rises day by day to its configured one.

The schedule is applied as the worker's limits (the gateway's limiter follows a worker's
limits), recomputed at each UTC midnight and whenever a SIM shows up in a modem.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import date, datetime, time, timedelta

import structlog

from drivers.clock import Clock
from drivers.modem import Modem
from gatewayd.config.model import GatewayConfig, Limits, WarmupConfig
from gatewayd.core import Gateway
from gatewayd.fleet.binding import find_sim

log = structlog.get_logger(__name__)

RECHECK_SECONDS = 60.0  # a SIM newly seen in a modem gets its schedule this soon


def day_limit(warmup: WarmupConfig, full: int | None, today: date) -> int | None:
    """The daily limit on ``today``: rising from ``first_day`` to ``full`` over ``days``."""
    day = (today - date.fromisoformat(warmup.start)).days
    if day >= warmup.days:
        return full
    if full is None:
        return warmup.first_day if day < 0 else None
    day = max(day, 0)
    return min(full, warmup.first_day + (full - warmup.first_day) * day // warmup.days)


def warm_limits(limits: Limits, warmup: WarmupConfig, today: date) -> Limits:
    """``limits`` with the warm-up's daily limit in force (per hour and minute capped by it)."""
    day = day_limit(warmup, limits.max_per_day, today)
    if day == limits.max_per_day:
        return limits

    def cap(value: int | None) -> int | None:
        return day if value is None or day is None else min(value, day)

    return dataclasses.replace(
        limits,
        max_per_day=day,
        max_per_hour=cap(limits.max_per_hour),
        max_per_minute=cap(limits.max_per_minute),
    )


class Warmup:
    """Applies every SIM's warm-up schedule to the worker that carries it."""

    def __init__(self, config: GatewayConfig, gateway: Gateway, *, clock: Clock) -> None:
        self._config = config
        self._gateway = gateway
        self._clock = clock
        # (worker, SIM) -> the worker's limits before warm-up
        self._base: dict[tuple[str, str | None], Limits] = {}
        self._task: asyncio.Task[None] | None = None

    def attach(self, modem: Modem) -> None:
        """Apply the schedule as soon as ``modem`` changes state (a SIM read, before it sends).

        State handlers run synchronously, so the limits are in place before any worker the
        same change woke can run.
        """
        modem.on_state_change(lambda _state, _reason: self.apply())

    def start(self) -> None:
        """Apply now and keep the schedule."""
        self.apply()
        self._task = asyncio.create_task(self._run(), name="fleet-warmup")

    async def stop(self) -> None:
        """Stop keeping the schedule."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def apply(self) -> None:
        """Set each worker's limits for today's step of its SIM's schedule."""
        today = self._clock.now().date()
        for worker in self._gateway.workers:
            info = worker.modem.info
            sim = find_sim(self._config, info.iccid, info.imei)
            if sim is None or sim.warmup is None:
                continue
            base = self._base.setdefault((worker.name, info.iccid), worker.config.limits)
            limits = warm_limits(base, sim.warmup, today)
            if limits != worker.config.limits:
                worker.config = dataclasses.replace(worker.config, limits=limits)
                log.info("warmup.limits", modem=worker.name, sim=info.iccid, day=limits.max_per_day)
                self._gateway.wake_all()

    async def _run(self) -> None:
        while True:
            now = self._clock.now()
            midnight = datetime.combine(now.date() + timedelta(days=1), time(), now.tzinfo)
            wait = min((midnight - now).total_seconds(), RECHECK_SECONDS)
            await self._clock.sleep(max(wait, 0.001))
            self.apply()
