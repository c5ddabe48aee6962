"""Prepaid credit on the simulator: the balance is read by USSD (Huawei's packed hex), falls
with each SMS, and below its floor the SIM pauses itself and raises ``credit_low``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.clock import SystemClock
from drivers.sim import SimNetwork
from tests.e2e.daemon import TOKEN, running_daemon
from tests.e2e.test_inbound_webhooks import Receiver, hook_config
from tests.e2e.test_inbound_webhooks import receiver as receiver
from tests.gatewayd.api.client import ApiClient

HANDSET = "+34611000001"


@pytest.fixture
async def net() -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=SystemClock(), seed=13, default_handset={"report_delay": 0.05})
    yield network
    await network.close()


async def test_balance_below_floor_pauses_the_sim_until_a_top_up(
    net: SimNetwork, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.fail_first = 0
    sim = await net.add_modem("huawei", latency=(0, 0))
    sim.balance, sim.sms_cost, sim.ussd_delay = 1.35, 0.1, 0.05
    config = hook_config(tmp_path, [sim.url], receiver.url)
    config.write_text(
        config.read_text()
        + "[alarms]\ncheck_seconds = 0.1\nclear_after_seconds = 0.3\n"
        + f'[[sims]]\niccid = "{sim.iccid}"\n'
        + '[sims.credit]\nussd = "*111#"\nfloor = 1.0\nevery_sends = 2\n'
    )
    async with running_daemon(config) as d:
        body = await d.wait_for(
            "/v1/modems", lambda b: (b["modems"][0]["credit"] or {}).get("balance") == 1.35
        )
        assert body["modems"][0]["paused"] is False
        api = ApiClient(d.session, d.url, TOKEN)  # checks answers against the OpenAPI document
        answer = await api.call("POST", "/v1/modems/m1/ussd", {"code": "*111#"})
        assert answer.status == 200, answer.body
        assert answer.body["answer"] == "Su saldo es 1.35 EUR"  # decoded from packed hex
        assert answer.body["balance"] == 1.35
        error = await api.call("POST", "/v1/modems/m1/ussd", {"code": "*111#;ATH"})
        assert (error.status, error.body["error"]["field"]) == (422, "code")
        missing = await api.call("POST", "/v1/modems/nope/ussd", {"code": "*111#"})
        assert missing.status == 404

        sim.set_fault(latency=(0.3, 0.3))  # a modem's time per SMS: the check runs between
        ids = []
        for i in range(6):
            status, msg = await d.call("POST", "/v1/messages", {"to": HANDSET, "text": f"n{i}"})
            assert status == 202
            ids.append(msg["id"])
        body = await d.wait_for("/v1/modems", lambda b: b["modems"][0]["paused"])
        credit = body["modems"][0]["credit"]
        assert credit["below_floor"] is True
        assert credit["balance"] < 1.0
        await receiver.wait(lambda: receiver.of("modem.alarm"))
        [(_, raw, _)] = receiver.of("modem.alarm")
        assert json.loads(raw)["data"]["alarm"] == "credit_low"
        # The SIM stopped itself: not every queued message went out.
        sent = len(sim.sent)
        assert 4 <= sent < 6
        statuses = [(await d.call("GET", f"/v1/messages/{i}"))[1]["status"] for i in ids]
        assert statuses.count("queued") == 6 - sent

        # A top-up: the next balance read resumes the SIM and clears the alarm.
        sim.balance = 5.0
        sim.set_fault(latency=(0, 0))
        topped = await api.call("POST", "/v1/modems/m1/ussd", {"code": "*111#"})
        assert (topped.body["balance"], topped.body["below_floor"]) == (5.0, False)
        await d.wait_for("/v1/modems", lambda b: not b["modems"][0]["paused"])
        await receiver.wait(lambda: receiver.of("modem.alarm_cleared"))
        for i in ids:
            await d.wait_for(f"/v1/messages/{i}", lambda b: b["status"] in ("sent", "delivered"))
