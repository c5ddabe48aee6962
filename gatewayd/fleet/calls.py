"""Missed calls: each call a modem hung up becomes a ``call.missed`` webhook with the caller,
and, when configured, one SMS reply per caller and day (through the SIM that was called).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import structlog

from drivers.clock import Clock
from drivers.modem import Modem
from gatewayd.config.model import CallsConfig
from gatewayd.core import Gateway, GatewayError, SubmitRequest
from gatewayd.store import Store

log = structlog.get_logger(__name__)

DAY = timedelta(days=1)


class CallService:
    """Hooks every modem's hang-ups; writes the webhook and the optional reply."""

    def __init__(
        self, config: CallsConfig, gateway: Gateway, store: Store, *, clock: Clock
    ) -> None:
        self._config = config
        self._gateway = gateway
        self._store = store
        self._clock = clock
        self._replied: dict[str, datetime] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, modem: Modem) -> None:
        """Report the calls ``modem`` hangs up from now on."""
        modem.on_call(lambda caller: self._missed(modem, caller))

    async def stop(self) -> None:
        """Let the webhook writes and replies in flight finish (bounded)."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)

    def _missed(self, modem: Modem, caller: str | None) -> None:
        task = asyncio.create_task(self._report(modem.name, modem.identity, caller))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report(self, name: str, sim: str | None, caller: str | None) -> None:
        now = self._clock.now()
        data: dict[str, object] = {
            "modem": name,
            "sim": sim,
            "caller": caller,
            "at": now.isoformat().replace("+00:00", "Z"),
        }
        log.info("call.missed", modem=name, caller=caller)
        try:
            await self._store.record_event("call.missed", data, now)
        except Exception:
            log.exception("call.webhook_not_stored", modem=name)
        if caller is not None and self._config.reply_text and self._may_reply(caller, now):
            await self._reply(name, caller)

    def _may_reply(self, caller: str, now: datetime) -> bool:
        last = self._replied.get(caller)
        per = DAY / self._config.reply_per_day
        if last is not None and now - last < per:
            log.info("call.reply_skipped", caller=caller, reason="rate limit")
            return False
        self._replied[caller] = now
        return True

    async def _reply(self, name: str, caller: str) -> None:
        request = SubmitRequest(to=caller, text=self._config.reply_text, modem=name)
        try:
            await self._gateway.submit(request)
        except GatewayError as exc:  # opted out, not a valid number...
            log.info("call.reply_refused", caller=caller, error=exc.message)
