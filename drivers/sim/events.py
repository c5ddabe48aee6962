"""Awaiting the simulator: a condition checked whenever something it depends on changes.

Tests never sleep to wait for the simulator; they await :meth:`Waiters.wait_for` with a
timeout, and every state change calls :meth:`Waiters.notify`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class SimEvent:
    """Something a modem did that a test may wait for (see ``SimModem.wait_event``)."""

    time: datetime
    kind: str  # "command", "prompt", "latency", "sent", "urc", "reboot", "disconnect", ...
    detail: str


class Waiters:
    """Futures waiting for conditions; :meth:`notify` re-checks them all."""

    def __init__(self) -> None:
        self._waiting: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    async def wait_for(self, condition: Callable[[], bool], seconds: float, what: str) -> None:
        """Return once ``condition()`` holds; TimeoutError naming ``what`` after ``seconds``."""
        if condition():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (condition, fut)
        self._waiting.append(entry)
        try:
            async with asyncio.timeout(seconds):
                await fut
        except TimeoutError:
            raise TimeoutError(f"timed out after {seconds}s waiting for {what}") from None
        finally:
            if entry in self._waiting:
                self._waiting.remove(entry)

    def notify(self) -> None:
        """Wake every waiter whose condition now holds."""
        for condition, fut in list(self._waiting):
            if not fut.done() and condition():
                fut.set_result(None)
