"""A warm-up schedule holds on the simulator: a SIM on its first day sends no more than the
schedule's first-day limit (counted in the simulator's own log), the rest waits queued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.clock import SystemClock
from drivers.sim import SimNetwork
from tests.e2e.daemon import running_daemon, write_config

HANDSET = "+34611000001"


@pytest.fixture
async def net() -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=SystemClock(), seed=19, default_handset={"report_delay": 0.05})
    yield network
    await network.close()


async def test_first_day_of_warmup_caps_the_day(net: SimNetwork, tmp_path: Path) -> None:
    sim = await net.add_modem("simcom", latency=(0, 0))
    today = datetime.now(UTC).date().isoformat()
    config = write_config(
        tmp_path,
        [sim.url],
        f'[[sims]]\niccid = "{sim.iccid}"\n'
        f'[sims.warmup]\nstart = "{today}"\ndays = 10\nfirst_day = 3\n',
    )
    async with running_daemon(config) as d:
        body = await d.wait_for("/v1/modems", lambda b: b["modems"][0]["state"] == "ready")
        assert body["modems"][0]["limits"]["day"] == 3
        ids = []
        for i in range(5):
            status, msg = await d.call("POST", "/v1/messages", {"to": HANDSET, "text": f"w{i}"})
            assert status == 202
            ids.append(msg["id"])
        await d.wait_for(
            "/v1/modems",
            lambda b: b["modems"][0]["headroom"]["day"] == 0 and b["modems"][0]["queue_depth"] == 2,
        )
        statuses = [(await d.call("GET", f"/v1/messages/{i}"))[1]["status"] for i in ids]
        assert statuses.count("queued") == 2
        assert len(sim.sent) == 3  # the simulator's own log of what left the SIM
        assert {r.iccid for r in sim.sent} == {sim.iccid}
