from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from drivers.clock import ManualClock
from drivers.modem import InboundSms, Modem, ModemState
from drivers.pdu import StatusReport
from drivers.sim import SimNetwork


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def net(clock: ManualClock) -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=clock, seed=11, default_latency=(0.0, 0.0))
    yield network
    await network.close()


@dataclass
class Harness:
    """A driver Modem with its observations: states, inbound SMS, reports."""

    modem: Modem
    states: list[tuple[ModemState, str]] = field(default_factory=list)
    inbound: list[InboundSms] = field(default_factory=list)
    reports: list[StatusReport] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, condition: Callable[[], bool], seconds: float = 5.0) -> None:
        """Await a condition re-checked whenever the harness sees something."""
        async with asyncio.timeout(seconds):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    def seen(self, state: ModemState) -> bool:
        return any(s is state for s, _ in self.states)


@pytest.fixture
async def harness_factory(clock: ManualClock) -> AsyncIterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(url: str, **kwargs: object) -> Harness:
        kwargs.setdefault("name", "m1")
        modem = Modem(url, clock=clock, backoff_initial=1.0, **kwargs)  # type: ignore[arg-type]
        h = Harness(modem)

        def on_state(state: ModemState, reason: str) -> None:
            h.states.append((state, reason))
            h.changed.set()

        async def on_sms(sms: InboundSms) -> None:
            h.inbound.append(sms)
            h.changed.set()

        async def on_report(report: StatusReport) -> None:
            h.reports.append(report)
            h.changed.set()

        modem.on_state_change(on_state)
        modem.set_inbound_handler(on_sms)
        modem.set_report_handler(on_report)
        made.append(h)
        return h

    yield make
    for h in made:
        await h.modem.stop()
