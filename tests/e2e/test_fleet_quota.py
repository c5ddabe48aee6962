"""A monthly quota holds on the simulator: the SIM pauses itself once it sent its quota this
month (counted in the simulator's own log) and the rest waits queued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.clock import SystemClock
from drivers.sim import SimNetwork
from tests.e2e.daemon import running_daemon, write_config

HANDSET = "+34611000001"


@pytest.fixture
async def net() -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=SystemClock(), seed=23, default_handset={"report_delay": 0.05})
    yield network
    await network.close()


async def test_monthly_quota_pauses_the_sim(net: SimNetwork, tmp_path: Path) -> None:
    sim = await net.add_modem("simcom", latency=(0.2, 0.2))
    config = write_config(
        tmp_path, [sim.url], f'[[sims]]\niccid = "{sim.iccid}"\nmonthly_quota = 3\n'
    )
    async with running_daemon(config) as d:
        await d.wait_for("/v1/modems", lambda b: b["modems"][0]["state"] == "ready")
        for i in range(5):
            status, _ = await d.call("POST", "/v1/messages", {"to": HANDSET, "text": f"q{i}"})
            assert status == 202
        body = await d.wait_for("/v1/modems", lambda b: b["modems"][0]["paused"])
        modem = body["modems"][0]
        assert (modem["sent_this_month"], modem["monthly_quota"]) == (3, 3)
        await d.wait_for("/v1/modems", lambda b: b["modems"][0]["queue_depth"] == 2)
        assert len(sim.sent) == 3  # the simulator's own log


async def test_a_sim_at_its_quota_sends_nothing_after_a_restart(
    net: SimNetwork, tmp_path: Path
) -> None:
    # The ICCID is read only as the modem comes up again: the SIM must be paused then,
    # before its worker takes the message still queued.
    sim = await net.add_modem("simcom", latency=(0.2, 0.2))
    config = write_config(
        tmp_path, [sim.url], f'[[sims]]\niccid = "{sim.iccid}"\nmonthly_quota = 3\n'
    )
    async with running_daemon(config) as d:
        await d.wait_for("/v1/modems", lambda b: b["modems"][0]["state"] == "ready")
        for i in range(4):
            status, _ = await d.call("POST", "/v1/messages", {"to": HANDSET, "text": f"q{i}"})
            assert status == 202
        await d.wait_for("/v1/modems", lambda b: b["modems"][0]["paused"])
        await d.wait_for("/v1/modems", lambda b: b["modems"][0]["queue_depth"] == 1)
    assert len(sim.sent) == 3
    async with running_daemon(config) as d:
        body = await d.wait_for(
            "/v1/modems",
            lambda b: b["modems"][0]["state"] == "ready" and b["modems"][0]["paused"],
        )
        modem = body["modems"][0]
        assert (modem["sent_this_month"], modem["monthly_quota"]) == (3, 3)
        assert modem["queue_depth"] == 1
    assert len(sim.sent) == 3  # the simulator's own log
