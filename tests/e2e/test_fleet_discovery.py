"""Hot-plug on the simulator: a stick whose by-id link appears at run time is probed,
attached by ICCID with that SIM's PIN, pool and limits, and sends the queued work; a stick
pulled mid-send hands its work back and is attached again when it returns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.clock import SystemClock
from drivers.sim import SimNetwork
from tests.e2e.daemon import TOKEN, Running, running_daemon, write_config
from tests.gatewayd.api.client import ApiClient

HANDSET = "+34611000001"
ICCID = "89340710000000004321"
OTHER_ICCID = "89340710000000005555"
STICK = "usb-HUAWEI_Mobile_E173_0123456789-if00-port0"
DIAG = "usb-HUAWEI_Mobile_E173_0123456789-if01-port0"


@pytest.fixture
async def net() -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=SystemClock(), seed=5, default_handset={"report_delay": 0.05})
    yield network
    await network.close()


def fleet_config(tmp_path: Path, by_id: Path) -> Path:
    (tmp_path / "blue.pin").write_text("4321\n")
    return write_config(
        tmp_path,
        [],
        f"""[discovery]
patterns = ["{by_id}/usb-*HUAWEI*"]
directory = "{by_id}"
poll_seconds = 0.1
probe_timeout_seconds = 0.5
pool = "default"
[[sims]]
iccid = "{ICCID}"
name = "blue"
pin_file = "blue.pin"
[sims.limits]
max_per_minute = 7
max_per_hour = 70
max_per_day = 700
""",
    )


async def modem_named(d: Running, name: str) -> dict[str, object]:
    body = await d.wait_for(
        "/v1/modems",
        lambda b: any(m["name"] == name and m["state"] == "ready" for m in b["modems"]),
    )
    return next(m for m in body["modems"] if m["name"] == name)


async def test_stick_plugged_in_is_attached_by_iccid_with_its_pin_and_limits(
    net: SimNetwork, tmp_path: Path
) -> None:
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    async with running_daemon(fleet_config(tmp_path, by_id)) as d:
        status, queued = await d.call("POST", "/v1/messages", {"to": HANDSET, "text": "hola"})
        assert status == 202, queued
        sim = await net.add_modem(  # a two-port stick: only if00 speaks AT
            "huawei",
            iccid=ICCID,
            pin="4321",
            link_path=str(by_id / STICK),
            silent_ports=[str(by_id / DIAG)],
            latency=(0, 0),
        )
        modem = await modem_named(d, "blue")
        assert modem["sim"] == ICCID
        assert (modem["imei"], modem["technology"]) == (sim.imei, "3G")  # E173: UTRAN
        assert modem["headroom"]["hour"] in (69, 70)  # type: ignore[index]
        await d.wait_for(
            f"/v1/messages/{queued['id']}", lambda b: b["status"] in ("sent", "delivered")
        )
        assert [e.detail for e in sim.events if e.kind == "command" and "CPIN=" in e.detail]
        assert net.handset(HANDSET).received[-1].text == "hola"
        api = ApiClient(d.session, d.url, TOKEN)  # checks answers against the OpenAPI document
        await api.call("GET", "/v1/modems")
        ports = {
            p["path"].rsplit("/", 1)[1]: p
            for p in (await api.call("GET", "/v1/ports")).body["ports"]
        }
        assert (ports[STICK]["state"], ports[STICK]["iccid"]) == ("attached", ICCID)
        skipped = await d.wait_line('"discovery.port_skipped"')
        assert DIAG in skipped
        assert "not an AT port" in skipped
        attached = await d.wait_line('"discovery.attached"')
        assert STICK in attached
        assert ICCID in attached


async def test_stick_pulled_mid_send_hands_work_back_and_returns(
    net: SimNetwork, tmp_path: Path
) -> None:
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    async with running_daemon(fleet_config(tmp_path, by_id)) as d:
        sim = await net.add_modem(
            "huawei", iccid=ICCID, pin="4321", link_path=str(by_id / STICK), latency=(0, 0)
        )
        await modem_named(d, "blue")
        sim.set_fault(latency=(1.5, 1.5))
        status, first = await d.call("POST", "/v1/messages", {"to": HANDSET, "text": "uno"})
        assert status == 202
        status, second = await d.call("POST", "/v1/messages", {"to": HANDSET, "text": "dos"})
        assert status == 202
        await sim.wait_event("command", contains="+CMGS")
        sim.disconnect()  # the by-id link goes with the device
        await d.wait_line('"discovery.detached"')
        body = await d.wait_for(f"/v1/messages/{second['id']}", lambda b: True)
        assert body["status"] == "queued"  # handed back, not failed
        sim.set_fault(latency=(0, 0))
        await sim.reconnect(reboot=True)  # a stick plugged back powers up afresh
        await d.wait_for(
            f"/v1/messages/{second['id']}", lambda b: b["status"] in ("sent", "delivered")
        )
        body = await d.wait_for(f"/v1/messages/{first['id']}", lambda b: True)
        # In flight when pulled: sent or unknown (DESIGN: unknown outcomes), never failed.
        assert body["status"] in ("queued", "sending", "sent", "delivered", "unconfirmed")


async def test_a_stick_plugged_in_is_noticed_by_inotify_not_the_poll(
    net: SimNetwork, tmp_path: Path
) -> None:
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    config = fleet_config(tmp_path, by_id)
    config.write_text(config.read_text().replace("poll_seconds = 0.1", "poll_seconds = 300"))
    async with running_daemon(config) as d:
        await d.wait_line('"discovery.watching"')
        await net.add_modem(
            "huawei", iccid=ICCID, pin="4321", link_path=str(by_id / STICK), latency=(0, 0)
        )
        # Far sooner than the 300 s poll: the link's creation woke the scan.
        attached = await d.wait_line('"discovery.attached"', within=10.0)
        assert STICK in attached
