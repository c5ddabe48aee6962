"""Incoming calls on the simulator: RING and +CLIP, hung up with ATH after the configured
delay, a ``call.missed`` webhook with the caller, and one SMS reply per caller and day.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.clock import SystemClock
from drivers.sim import SimNetwork
from drivers.sim.control_http import start_control
from tests.e2e.daemon import running_daemon
from tests.e2e.test_inbound_webhooks import Receiver, hook_config
from tests.e2e.test_inbound_webhooks import receiver as receiver

CALLER = "+34622000002"


@pytest.fixture
async def net() -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=SystemClock(), seed=17, default_handset={"report_delay": 0.05})
    yield network
    await network.close()


async def test_call_is_hung_up_reported_and_answered_once(
    net: SimNetwork, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.fail_first = 0
    sim = await net.add_modem("quectel", latency=(0, 0))
    config = hook_config(tmp_path, [sim.url], receiver.url)
    config.write_text(
        config.read_text()
        + '[calls]\nhangup_delay_seconds = 0.3\nreply_text = "No atendemos llamadas"\n'
    )
    async with running_daemon(config) as d:
        await d.wait_for("/v1/modems", lambda b: b["modems"][0]["state"] == "ready")
        assert sim.clip  # the init asked for the caller's number
        control = await start_control(net)
        host, port = control.addresses[0][:2]
        try:
            sim.incoming_call(CALLER, ring_every=0.1, rings=50)
            await sim.wait_event("hangup", count=1)
            await receiver.wait(lambda: len(receiver.of("call.missed")) == 1)
            # The second call through the simulator's control API, as a demo would.
            body = {"number": CALLER, "ring_every": 0.1, "rings": 50}
            async with d.session.post(f"http://{host}:{port}/modems/{sim.id}/call", json=body) as r:
                assert r.status == 200
            await sim.wait_event("hangup", count=2)
            await receiver.wait(lambda: len(receiver.of("call.missed")) == 2)
        finally:
            await control.cleanup()
        rings = [e for e in sim.events if e.kind == "urc" and e.detail.startswith("RING")]
        assert len(rings) >= 2 * 2  # it rang for the delay before the hang-up
        [first, second] = [json.loads(body)["data"] for _, body, _ in receiver.of("call.missed")]
        assert first["caller"] == second["caller"] == CALLER
        assert first["sim"] == sim.iccid
        await net.handset(CALLER).wait_received(1)
        assert [m.text for m in net.handset(CALLER).received] == ["No atendemos llamadas"]
