"""The Gateway driving real drivers.modem.Modem objects against simulated modems over ptys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from drivers.clock import ManualClock
from drivers.modem import Modem
from drivers.sim import SimNetwork
from gatewayd.config.model import Limits
from gatewayd.core import Gateway, MessageStatus, OptedOut, SubmitRequest
from gatewayd.store import SqliteStore
from tests.gatewayd.core.fakes import config, modem_config

HANDSET = "+34611111111"
LONG = "Su pedido 1234 ha salido del almacén y llegará mañana entre las 9 y las 14 h. " * 2


@pytest.fixture
async def net(clock: ManualClock) -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=clock, seed=3, default_latency=(0.0, 0.0))
    yield network
    await network.close()


async def until(clock: ManualClock, condition: Callable[[], bool], step: float = 0.5) -> None:
    """Move the clock in small steps until ``condition`` holds (I/O happens between)."""
    async with asyncio.timeout(10):
        while not condition():
            await clock.advance(step)
            await asyncio.sleep(0.005)


async def test_send_report_and_a_stop_reply_through_simulated_modems(
    tmp_path: Path, clock: ManualClock, net: SimNetwork
) -> None:
    handset = net.add_handset(HANDSET, report="delivered", report_delay=2.0, replies=["Baja."])
    sims = [await net.add_modem("simcom", transport="pty") for _ in range(2)]
    modems = [Modem(s.url, name=f"m{n}", clock=clock) for n, s in enumerate(sims, 1)]
    cfg = config(tmp_path, modem_config("m1"), modem_config("m2"))
    store = SqliteStore(cfg.database)
    await store.open()
    gateway = Gateway(cfg, store, clock=clock, modems=modems)
    try:
        for m in modems:
            await m.start()
        for m in modems:
            await m.wait_ready(5)
        await gateway.start()
        res = await gateway.submit(SubmitRequest(to=HANDSET, text=LONG))
        assert (res.encoding, res.segments) == ("ucs2", 3)

        async def status() -> MessageStatus:
            return (await gateway.get_message(res.id)).status

        await handset.wait_received(1)
        assert handset.received[0].text == LONG
        parts = [r for s in sims for r in s.sent]
        assert len({r.iccid for r in parts}) == 1  # both parts through one SIM
        # The report delay, then the handset's "Baja." reply arrives and opts it out.
        async with asyncio.timeout(10):
            while await status() is not MessageStatus.DELIVERED:
                await clock.advance(0.5)
        async with asyncio.timeout(10):
            while not (await gateway.list_optouts()).items:
                await clock.advance(0.5)
        with pytest.raises(OptedOut):
            await gateway.submit(SubmitRequest(to=HANDSET, text="more?"))
        await until(clock, lambda: len(handset.received) >= 2)
        assert handset.received[1].text.startswith("You will get no more messages")
        [inbound] = (await gateway.list_inbound()).items
        assert (inbound.sender, inbound.text) == (HANDSET, "Baja.")
    finally:
        await gateway.stop(drain_timeout=1)
        for m in modems:
            await m.stop()
        await store.close()


async def test_limits_hold_on_a_simulated_modem(
    tmp_path: Path, clock: ManualClock, net: SimNetwork
) -> None:
    sim = await net.add_modem("quectel", transport="pty")
    modem = Modem(sim.url, name="m1", clock=clock)
    limits = Limits(max_per_minute=2, max_per_hour=None, max_per_day=None)
    cfg = config(tmp_path, modem_config("m1", limits=limits))
    store = SqliteStore(cfg.database)
    await store.open()
    gateway = Gateway(cfg, store, clock=clock, modems=[modem])
    try:
        await modem.start()
        await modem.wait_ready(5)
        await gateway.start()
        for n in range(5):
            await gateway.submit(SubmitRequest(to=f"+3461111110{n}", text=f"n{n}"))
        await until(clock, lambda: len(sim.sent) >= 5, step=5.0)
        times = [r.time for r in sim.sent]
        window = timedelta(seconds=60)
        assert max(sum(1 for u in times if t <= u < t + window) for t in times) == 2
        assert times[4] - times[0] >= timedelta(seconds=120)
    finally:
        await gateway.stop(drain_timeout=1)
        await modem.stop()
        await store.close()
