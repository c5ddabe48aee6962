"""Health alarms on the simulator, end to end: each raise and clear is a signed webhook
(``modem.alarm`` / ``modem.alarm_cleared``), a Prometheus gauge and a line in
``GET /v1/alarms``.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.clock import SystemClock
from drivers.sim import RegStat, SimNetwork
from drivers.sim.storage import PduKind, Stat, StoredMessage
from tests.e2e.daemon import TOKEN, Running, running_daemon
from tests.e2e.test_inbound_webhooks import Receiver, hook_config, verify
from tests.e2e.test_inbound_webhooks import receiver as receiver
from tests.gatewayd.api.client import ApiClient

FAST_ALARMS = (
    "[alarms]\ncheck_seconds = 0.1\nraise_after_seconds = 0.3\nclear_after_seconds = 0.5\n"
)


@pytest.fixture
async def net() -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=SystemClock(), seed=11, default_handset={"report_delay": 0.05})
    yield network
    await network.close()


def alarms_of(rec: Receiver, event: str) -> list[dict[str, object]]:
    out = []
    for headers, body, status in rec.of(event):
        if status == 200:
            verify(headers, body)
            out.append(json.loads(body)["data"])
    return out


async def metric(d: Running, line: str) -> bool:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with d.session.get(d.url + "/metrics", headers=headers) as r:
        return line in await r.text()


async def test_not_registered_and_modem_gone_raise_and_clear_with_webhooks(
    net: SimNetwork, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.fail_first = 0
    # A stable link, as /dev/serial/by-id gives: the pty comes back as another /dev/pts/N.
    sim = await net.add_modem("quectel", latency=(0, 0), link_path=str(tmp_path / "modem-q"))
    config = hook_config(tmp_path, [sim.url], receiver.url)
    config.write_text(config.read_text() + FAST_ALARMS)
    async with running_daemon(config) as d:
        await d.wait_for("/v1/modems", lambda b: b["modems"][0]["state"] == "ready")
        sim.set_registration(RegStat.SEARCHING)
        await receiver.wait(lambda: alarms_of(receiver, "modem.alarm"))
        [raised] = alarms_of(receiver, "modem.alarm")
        assert raised["alarm"] == "not_registered"
        assert raised["sim"] == sim.iccid
        await d.wait_for("/v1/alarms", lambda b: len(b["alarms"]) == 1)
        listed = await ApiClient(d.session, d.url, TOKEN).call("GET", "/v1/alarms")
        assert listed.body["alarms"][0]["alarm"] == "not_registered"  # checked against OpenAPI
        assert await metric(d, 'gatewayd_modem_alarm{alarm="not_registered",modem="m1"} 1.0')

        sim.set_registration(RegStat.HOME)
        await receiver.wait(lambda: alarms_of(receiver, "modem.alarm_cleared"))
        [cleared] = alarms_of(receiver, "modem.alarm_cleared")
        assert cleared["alarm"] == "not_registered"
        await d.wait_for("/v1/alarms", lambda b: b["alarms"] == [])
        assert await metric(d, 'gatewayd_modem_alarm{alarm="not_registered",modem="m1"} 0.0')

        sim.disconnect()
        await receiver.wait(lambda: len(alarms_of(receiver, "modem.alarm")) == 2)
        assert alarms_of(receiver, "modem.alarm")[1]["alarm"] == "modem_gone"
        await sim.reconnect()
        await receiver.wait(lambda: len(alarms_of(receiver, "modem.alarm_cleared")) == 2)
        assert alarms_of(receiver, "modem.alarm_cleared")[1]["alarm"] == "modem_gone"
        # Raised once and cleared once each: no flapping while the modem reconnected.
        assert [a["alarm"] for a in alarms_of(receiver, "modem.alarm")] == [
            "not_registered",
            "modem_gone",
        ]


async def test_pin_needed_is_raised_for_a_sim_without_its_pin(
    net: SimNetwork, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.fail_first = 0
    sim = await net.add_modem("simcom", pin="1234", latency=(0, 0))
    config = hook_config(tmp_path, [sim.url], receiver.url)
    config.write_text(config.read_text() + FAST_ALARMS)
    async with running_daemon(config) as d:
        await receiver.wait(lambda: alarms_of(receiver, "modem.alarm"))
        [raised] = alarms_of(receiver, "modem.alarm")
        assert raised["alarm"] == "pin_needed"
        assert "PIN required" in str(raised["detail"])
        # The PIN was never guessed (DESIGN: three wrong PINs lock the SIM).
        assert not [e for e in sim.events if e.kind == "command" and "CPIN=" in e.detail]
        await d.wait_for("/v1/alarms", lambda b: b["alarms"][0]["alarm"] == "pin_needed")


async def test_pin_needed_clears_when_an_admin_adds_the_pin_and_reloads(
    net: SimNetwork, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.fail_first = 0
    sim = await net.add_modem("simcom", pin="1234", latency=(0, 0))
    config = hook_config(tmp_path, [sim.url], receiver.url)
    text = config.read_text() + FAST_ALARMS
    config.write_text(text)
    pin_file = tmp_path / "sim-pin"
    with_pin = text + f'[[sims]]\niccid = "{sim.iccid}"\npin_file = "sim-pin"\n'

    def pin_attempts() -> int:
        return len([e for e in sim.events if e.kind == "command" and "CPIN=" in e.detail])

    async def reload(times: int) -> None:
        d.proc.send_signal(signal.SIGHUP)
        async with asyncio.timeout(10):
            while sum('"config.reloaded"' in line for line in d.lines) < times:
                d.new_line.clear()
                await d.new_line.wait()

    async with running_daemon(config) as d:
        await receiver.wait(lambda: alarms_of(receiver, "modem.alarm"))
        assert alarms_of(receiver, "modem.alarm")[0]["sim"] == sim.iccid  # whose PIN to add
        status, queued = await d.call(
            "POST", "/v1/messages", {"to": "+34611000001", "text": "hola"}
        )
        assert status == 202  # queued while the SIM waits for its PIN

        # A wrong PIN is tried once, and not again while the config keeps it.
        pin_file.write_text("9999\n")
        config.write_text(with_pin)
        await reload(1)
        await d.wait_line('"modem.pin_rejected"')
        await d.wait_for("/v1/modems", lambda b: "PIN rejected" in b["modems"][0]["state_reason"])
        assert pin_attempts() == 1
        await reload(2)
        assert pin_attempts() == 1
        assert alarms_of(receiver, "modem.alarm_cleared") == []

        # The right PIN: one new attempt, the modem serves, the alarm clears, work goes out.
        pin_file.write_text("1234\n")
        await reload(3)
        await receiver.wait(lambda: alarms_of(receiver, "modem.alarm_cleared"))
        [cleared] = alarms_of(receiver, "modem.alarm_cleared")
        assert cleared["alarm"] == "pin_needed"
        assert cleared["sim"] == sim.iccid
        assert pin_attempts() == 2
        await d.wait_for("/v1/alarms", lambda b: b["alarms"] == [])
        await d.wait_for(
            f"/v1/messages/{queued['id']}", lambda b: b["status"] in ("sent", "delivered")
        )
        assert [r.text for r in net.sent] == ["hola"]


async def test_sim_fault_and_no_reports_raise_and_clear(
    net: SimNetwork, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.fail_first = 0
    net.add_handset("+34611000001", reports=False)  # a network that sends no reports
    net.add_handset("+34611000002", report_delay=0.05)
    sim = await net.add_modem("simcom", latency=(0, 0))
    config = hook_config(tmp_path, [sim.url], receiver.url)
    config.write_text(config.read_text() + FAST_ALARMS + "no_reports_after_parts = 2\n")
    async with running_daemon(config) as d:
        await d.wait_for("/v1/modems", lambda b: b["modems"][0]["state"] == "ready")

        def raised() -> list[object]:
            return [a["alarm"] for a in alarms_of(receiver, "modem.alarm")]

        def cleared() -> list[object]:
            return [a["alarm"] for a in alarms_of(receiver, "modem.alarm_cleared")]

        for text in ("uno", "dos"):
            status, _ = await d.call("POST", "/v1/messages", {"to": "+34611000001", "text": text})
            assert status == 202
        await receiver.wait(lambda: "no_reports" in raised())
        status, _ = await d.call("POST", "/v1/messages", {"to": "+34611000002", "text": "tres"})
        await receiver.wait(lambda: "no_reports" in cleared())  # a report came back

        sim.set_fault(cms_error_rate=1.0, cms_error_codes=[330])  # SMSC unknown: SIM fault
        status, _ = await d.call("POST", "/v1/messages", {"to": "+34611000002", "text": "cuatro"})
        assert status == 202
        await receiver.wait(lambda: "sim_fault" in raised())
        sim.set_fault(cms_error_rate=0.0)
        status, _ = await d.call("POST", "/v1/modems/m1/resume")
        assert status == 200
        await receiver.wait(lambda: "sim_fault" in cleared())
        assert raised().count("sim_fault") == 1


async def test_signal_low_for_a_while_raises_and_clears_past_the_second_threshold(
    net: SimNetwork, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.fail_first = 0
    # A stable link, as /dev/serial/by-id gives: the pty comes back as another /dev/pts/N.
    sim = await net.add_modem("quectel", latency=(0, 0), link_path=str(tmp_path / "modem-q"))
    config = hook_config(tmp_path, [sim.url], receiver.url)
    text = config.read_text().replace(
        "[modems.limits]", "health_interval_seconds = 0.1\n[modems.limits]"
    )
    # Low for 0.3 s (0.005 min) raises; back above -100 dBm clears.
    config.write_text(text + FAST_ALARMS + "signal_low_minutes = 0.005\n")
    async with running_daemon(config) as d:
        await d.wait_for("/v1/modems", lambda b: b["modems"][0]["state"] == "ready")
        sim.set_fault(rssi=3)  # -107 dBm
        await receiver.wait(lambda: alarms_of(receiver, "modem.alarm"))
        [raised] = alarms_of(receiver, "modem.alarm")
        assert (raised["alarm"], raised["detail"]) == ("signal_low", "signal -107 dBm")
        sim.set_fault(rssi=5)  # -103 dBm: above the raise level, below the clear level
        await d.wait_for("/v1/modems", lambda b: b["modems"][0]["signal_dbm"] == -103)
        assert alarms_of(receiver, "modem.alarm_cleared") == []
        sim.set_fault(rssi=20)  # -73 dBm
        await receiver.wait(lambda: alarms_of(receiver, "modem.alarm_cleared"))
        assert [a["alarm"] for a in alarms_of(receiver, "modem.alarm")] == ["signal_low"]


async def test_storage_above_80_percent_raises_and_clears_below_70(
    net: SimNetwork, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.fail_first = 0
    sim = await net.add_modem("simcom", latency=(0, 0))
    config = hook_config(tmp_path, [sim.url], receiver.url)
    text = config.read_text().replace(
        "[modems.limits]", "health_interval_seconds = 0.1\n[modems.limits]"
    )
    config.write_text(text + FAST_ALARMS)
    async with running_daemon(config) as d:
        body = await d.wait_for("/v1/modems", lambda b: b["modems"][0]["storage"]["total"])
        assert body["modems"][0]["storage"]["total"] == 100  # the modem's memory (ME)
        store = sim.stores["ME"]
        # SMS that cannot be decoded stay on the modem (reported, never deleted unread).
        junk = StoredMessage(Stat.REC_READ, b"\x00\x07\xff", PduKind.DELIVER)
        slots = [store.put(junk) for _ in range(80)]
        await receiver.wait(lambda: alarms_of(receiver, "modem.alarm"))
        [raised] = alarms_of(receiver, "modem.alarm")
        assert (raised["alarm"], raised["detail"]) == ("storage_high", "storage 80/100")
        for index in slots[:15]:  # 65 %: below the clear level
            store.delete(index)
        await receiver.wait(lambda: alarms_of(receiver, "modem.alarm_cleared"))
        assert alarms_of(receiver, "modem.alarm_cleared")[0]["alarm"] == "storage_high"


async def test_send_error_rate_raises_and_clears(
    net: SimNetwork, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.fail_first = 0
    sim = await net.add_modem("simcom", latency=(0, 0))
    config = hook_config(tmp_path, [sim.url], receiver.url)
    config.write_text(config.read_text() + FAST_ALARMS + "error_window = 2\nerror_rate = 0.5\n")
    async with running_daemon(config) as d:
        await d.wait_for("/v1/modems", lambda b: b["modems"][0]["state"] == "ready")
        sim.set_fault(cms_error_rate=1.0, cms_error_codes=[42])  # congestion: temporary
        for i in range(3):
            body = {"to": f"+3461100001{i}", "text": "hola"}
            assert (await d.call("POST", "/v1/messages", body))[0] == 202
        await receiver.wait(lambda: alarms_of(receiver, "modem.alarm"))
        [raised] = alarms_of(receiver, "modem.alarm")
        assert (raised["alarm"], raised["detail"]) == ("send_errors", "error rate 100%")
        sim.set_fault(cms_error_rate=0.0)
        for i in range(2):
            body = {"to": f"+3461100002{i}", "text": "otra vez"}
            assert (await d.call("POST", "/v1/messages", body))[0] == 202
        await receiver.wait(lambda: alarms_of(receiver, "modem.alarm_cleared"))
        assert alarms_of(receiver, "modem.alarm_cleared")[0]["alarm"] == "send_errors"
