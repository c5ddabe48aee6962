"""The driver against every simulator personality, over pty and TCP: init, send, reports,
inbound (stored and direct), sweep, and every fault the simulator offers.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import pytest
import structlog

from drivers.at import CmsClass, CmsError, classify_cms
from drivers.clock import ManualClock
from drivers.modem import ModemNotReady, ModemState, SendAborted, SendOutcomeUnknown
from drivers.pdu import StatusCategory, encode_submit, segments
from drivers.profiles import GENERIC, HUAWEI, get_profile
from drivers.sim import RegStat, SimModem, SimNetwork, SimState
from drivers.sim.storage import PduKind
from tests.drivers.modem.conftest import Harness

HANDSET = "+34611111111"
SENDER = "+34622222222"
LONG = "Su pedido 1234 ha salido del almacén y llegará mañana entre las 9 y las 14 h. " * 2

# Short I/O timeouts so that "the modem stopped answering" takes a fraction of a second.
FAST = (("AT+CMGS", 0.5), ("AT", 0.3))

Factory = Callable[..., Harness]


async def settle(h: Harness, clock: ManualClock, condition: Callable[[], bool]) -> None:
    """Move the clock in small steps until ``condition`` holds (busy retries, backoff)."""
    async with asyncio.timeout(10):
        while not condition():
            await clock.advance(0.5)
            await asyncio.sleep(0.01)


async def stored_after_next_sweep(h: Harness, m: SimModem) -> int:
    """Messages left in the modem's stores once everything queued before a sweep is done.

    The simulator runs commands one at a time, so when the sweep's ``AT+CMGL`` arrives,
    every earlier ``AT+CMGD`` has been carried out.
    """
    listings = sum(1 for e in m.events if e.kind == "command" and "+CMGL" in e.detail)
    await h.modem.sweep()
    await m.wait_event("command", contains="+CMGL", count=listings + 1)
    return sum(s.used for s in m.stores.values())


def url_of(m: SimModem, transport: str) -> str:
    return m.tcp_url if transport == "tcp" else m.url  # type: ignore[return-value]


@pytest.mark.parametrize("profile", ["generic", "simcom", "quectel", "huawei"])
@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_init_send_reports_and_inbound(
    net: SimNetwork, clock: ManualClock, harness_factory: Factory, profile: str, transport: str
) -> None:
    m = await net.add_modem(profile, transport=transport)
    h = harness_factory(url_of(m, transport))
    await h.modem.start()
    await h.modem.wait_ready(5)
    assert h.modem.profile.name == profile  # auto-detected from AT+CGMI
    assert h.modem.identity == m.iccid
    assert (h.modem.info.imei, h.modem.info.imsi) == (m.imei, m.imsi)
    assert h.modem.info.registration == "home"
    assert h.modem.info.signal_dbm == -113 + 2 * m.faults.rssi
    assert [s for s, _ in h.states] == [
        ModemState.OPENING,
        ModemState.INITIALISING,
        ModemState.READY,
    ]
    assert m.settings.cmgf == 0

    single = await h.modem.send_text(HANDSET, "hola")
    multi = await h.modem.send_text(HANDSET, LONG)
    assert len(multi) == segments(LONG).parts > 1
    assert [r.mr for r in m.sent] == single + multi
    assert net.handset(HANDSET).received[-1].text == LONG

    await clock.advance(6)  # the handset's report delay
    await h.wait_for(lambda: len(h.reports) == 1 + len(multi))
    assert sorted(r.mr for r in h.reports) == sorted(single + multi)
    assert all(r.category is StatusCategory.DELIVERED for r in h.reports)

    await net.inject_inbound(to=m.msisdn, sender=SENDER, text="hola, ¿llega?")
    await h.wait_for(lambda: len(h.inbound) == 1)
    sms = h.inbound[0]
    assert (sms.message.sender, sms.message.text, sms.received_via) == (
        SENDER,
        "hola, ¿llega?",
        "cmti",
    )
    # Deleted only after the handler returned: the store is empty again.
    assert await stored_after_next_sweep(h, m) == 0
    assert len(h.inbound) == 1


async def test_sweep_at_start_picks_up_stored_sms(
    net: SimNetwork, harness_factory: Factory
) -> None:
    m = await net.add_modem("generic")  # the sim's default CNMI stores without a URC
    await net.inject_inbound(to=m.msisdn, sender=SENDER, text="mientras dormías")
    assert sum(s.used for s in m.stores.values()) == 1
    h = harness_factory(m.url)
    await h.modem.start()
    await h.wait_for(lambda: len(h.inbound) == 1)
    assert h.inbound[0].received_via == "sweep"
    assert h.inbound[0].message.text == "mientras dormías"
    assert await stored_after_next_sweep(h, m) == 0
    assert len(h.inbound) == 1


async def test_failing_handler_keeps_sms_on_the_modem(
    net: SimNetwork, harness_factory: Factory
) -> None:
    m = await net.add_modem("simcom")
    h = harness_factory(m.url)
    calls: list[str] = []

    async def broken(sms: object) -> None:
        calls.append("x")
        h.changed.set()
        raise RuntimeError("store down")

    h.modem.set_inbound_handler(broken)
    await h.modem.start()
    await h.modem.wait_ready(5)
    await net.inject_inbound(to=m.msisdn, sender=SENDER, text="no me pierdas")
    await h.wait_for(lambda: len(calls) == 1)
    assert await stored_after_next_sweep(h, m) == 1
    await h.wait_for(lambda: len(calls) == 2)  # the sweep offers it again


async def test_direct_delivery_acknowledged_with_cnma(
    net: SimNetwork, harness_factory: Factory
) -> None:
    m = await net.add_modem("generic")
    direct = dataclasses.replace(GENERIC, name="direct", cnmi_mt=2, csms=1)
    h = harness_factory(m.url, profile=direct)
    await h.modem.start()
    await h.modem.wait_ready(5)
    await net.inject_inbound(to=m.msisdn, sender=SENDER, text="directo")
    await h.wait_for(lambda: len(h.inbound) == 1)
    assert h.inbound[0].received_via == "cmt"
    assert h.inbound[0].index is None
    await m.wait_event("cnma")


async def test_huawei_routed_and_stored_copy_handed_on_once(
    net: SimNetwork, harness_factory: Factory
) -> None:
    m = await net.add_modem("huawei")
    routed = dataclasses.replace(HUAWEI, cnmi_mt=2)
    h = harness_factory(m.url, profile=routed)
    await h.modem.start()
    await h.modem.wait_ready(5)
    await net.inject_inbound(to=m.msisdn, sender=SENDER, text="dos veces")
    await h.wait_for(lambda: len(h.inbound) == 1)
    # The stored twin is found by the sweep, recognised and deleted, not handed on again.
    await stored_after_next_sweep(h, m)
    assert await stored_after_next_sweep(h, m) == 0
    assert len(h.inbound) == 1


async def test_cms_error_is_typed_and_modem_stays_ready(
    net: SimNetwork, harness_factory: Factory
) -> None:
    m = await net.add_modem("simcom")
    h = harness_factory(m.url)
    await h.modem.start()
    await h.modem.wait_ready(5)
    m.set_fault(cms_error_rate=1.0, cms_error_codes=[38])
    with pytest.raises(CmsError) as err:
        await h.modem.send_text(HANDSET, "hola")
    assert err.value.code == 38
    assert classify_cms(err.value.code) is CmsClass.TEMPORARY
    m.set_fault(cms_error_rate=0.0)
    assert len(await h.modem.send_text(HANDSET, "otra vez")) == 1
    assert h.modem.state is ModemState.READY


async def test_before_submit_false_aborts_at_prompt(
    net: SimNetwork, harness_factory: Factory
) -> None:
    m = await net.add_modem("quectel")
    h = harness_factory(m.url)
    await h.modem.start()
    await h.modem.wait_ready(5)
    part = encode_submit(HANDSET, "no")[0]
    with pytest.raises(SendAborted):
        await h.modem.send_pdu(part.hex(), part.length, before_submit=lambda: False)
    assert m.sent == []
    assert await h.modem.send_pdu(part.hex(), part.length, before_submit=lambda: True) >= 0


async def test_no_answer_after_ctrl_z_is_unknown_outcome(
    net: SimNetwork, harness_factory: Factory
) -> None:
    m = await net.add_modem("simcom", latency=(100.0, 100.0))  # never, on a manual clock
    h = harness_factory(m.url, profile=dataclasses.replace(get_profile("simcom"), timeouts=FAST))
    await h.modem.start()
    await h.modem.wait_ready(5)
    with pytest.raises(SendOutcomeUnknown):
        await h.modem.send_text(HANDSET, "¿salió?")


async def test_send_before_ready_is_refused(net: SimNetwork, harness_factory: Factory) -> None:
    m = await net.add_modem("generic")
    h = harness_factory(m.url)
    with pytest.raises(ModemNotReady):
        await h.modem.send_text(HANDSET, "pronto")


async def test_pin_entered_after_iccid(net: SimNetwork, harness_factory: Factory) -> None:
    m = await net.add_modem("simcom", pin="1234")
    h = harness_factory(m.url, pin="1234")
    await h.modem.start()
    await h.modem.wait_ready(5)
    commands = [e.detail for e in m.events if e.kind == "command"]
    iccid_at = next(i for i, c in enumerate(commands) if "CCID" in c.upper())
    pin_at = next(i for i, c in enumerate(commands) if c.upper().startswith("+CPIN="))
    assert iccid_at < pin_at
    assert h.modem.identity == m.iccid


async def test_wrong_pin_fails_once_and_is_never_retried(
    net: SimNetwork, clock: ManualClock, harness_factory: Factory
) -> None:
    m = await net.add_modem("quectel", pin="1234")
    h = harness_factory(m.url, pin="9999")
    await h.modem.start()
    await h.wait_for(lambda: h.modem.state is ModemState.FAILED)
    assert "PIN rejected" in h.modem.state_reason
    await clock.advance(600)
    pin_tries = [
        e for e in m.events if e.kind == "command" and e.detail.upper().startswith("+CPIN=")
    ]
    assert len(pin_tries) == 1
    with pytest.raises(ModemNotReady):
        await h.modem.wait_ready(1)


async def test_a_changed_pin_gets_one_new_attempt_and_the_same_pin_none(
    net: SimNetwork, harness_factory: Factory
) -> None:
    m = await net.add_modem("quectel", pin="1234")
    h = harness_factory(m.url, pins={m.iccid: "9999"})
    await h.modem.start()
    await h.wait_for(lambda: h.modem.state is ModemState.FAILED)
    assert h.modem.info.iccid == m.iccid  # the SIM whose PIN to fix
    assert not h.modem.apply_pins({m.iccid: "9999"})  # unchanged: never tried again
    assert not h.modem.apply_pins({"89000000000000000000": "1234"})  # another SIM's PIN
    assert h.modem.apply_pins({m.iccid: "1234"})
    await h.modem.wait_state(ModemState.READY, 5)
    pin_tries = [
        e for e in m.events if e.kind == "command" and e.detail.upper().startswith("+CPIN=")
    ]
    assert len(pin_tries) == 2
    assert not h.modem.apply_pins({m.iccid: "5555"})  # serving: a reload changes nothing


async def test_pin_required_but_not_configured_fails(
    net: SimNetwork, harness_factory: Factory
) -> None:
    m = await net.add_modem("generic", pin="1234")
    h = harness_factory(m.url)
    await h.modem.start()
    await h.wait_for(lambda: h.modem.state is ModemState.FAILED)
    assert "PIN required" in h.modem.state_reason


async def test_sim_busy_after_pin_is_waited_out(
    net: SimNetwork, clock: ManualClock, harness_factory: Factory
) -> None:
    m = await net.add_modem("simcom", pin="1234")
    m.set_fault(sim_busy_after_pin=3.0)
    h = harness_factory(m.url, pin="1234")
    await h.modem.start()
    await settle(h, clock, lambda: h.modem.state is ModemState.READY)
    assert m.settings.cmgf == 0


async def test_not_registered_degrades_and_recovers(
    net: SimNetwork, harness_factory: Factory
) -> None:
    m = await net.add_modem("simcom")
    h = harness_factory(m.url)
    await h.modem.start()
    await h.modem.wait_ready(5)
    m.set_registration(RegStat.NOT_REGISTERED)
    await h.wait_for(lambda: h.modem.state is ModemState.DEGRADED)
    assert "not registered" in h.modem.state_reason
    m.set_registration(RegStat.HOME)
    await h.wait_for(lambda: h.modem.state is ModemState.READY)


async def test_lte_registration_read_from_cereg(
    net: SimNetwork, clock: ManualClock, harness_factory: Factory
) -> None:
    m = await net.add_modem("quectel")
    h = harness_factory(m.url)
    await h.modem.start()
    await h.modem.wait_ready(5)
    m.set_registration(RegStat.ROAMING)
    await clock.advance(31)  # the health timer
    await h.wait_for(lambda: h.modem.info.registration == "roaming")


@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_port_disappears_and_comes_back(
    net: SimNetwork,
    clock: ManualClock,
    harness_factory: Factory,
    transport: str,
    tmp_path: object,
) -> None:
    link = f"{tmp_path}/modem1"
    m = await net.add_modem("simcom", transport=transport, link_path=link)
    h = harness_factory(link if transport == "pty" else url_of(m, transport))
    await h.modem.start()
    await h.modem.wait_ready(5)
    m.disconnect()
    await h.wait_for(lambda: h.seen(ModemState.RECONNECTING))
    await clock.advance(5)  # a few failed reopens while the port is gone
    await m.reconnect()
    await settle(h, clock, lambda: h.modem.state is ModemState.READY)
    states = [s for s, _ in h.states]
    assert states.index(ModemState.GONE) < len(states) - 1
    assert len(await h.modem.send_text(HANDSET, "de vuelta")) == 1


async def test_modem_that_stops_answering_is_reset_and_reopened(
    net: SimNetwork, clock: ManualClock, harness_factory: Factory
) -> None:
    m = await net.add_modem("simcom")
    profile = dataclasses.replace(get_profile("simcom"), timeouts=FAST)
    h = harness_factory(m.url, profile=profile)
    await h.modem.start()
    await h.modem.wait_ready(5)
    m.set_fault(unresponsive=True)
    await clock.advance(31)  # the health probe finds it
    await h.wait_for(lambda: h.seen(ModemState.GONE))
    assert "stopped answering" in next(r for s, r in h.states if s is ModemState.GONE)
    m.set_fault(unresponsive=False)
    await settle(h, clock, lambda: h.modem.state is ModemState.READY)


async def test_garbage_bytes_and_forced_echo(net: SimNetwork, harness_factory: Factory) -> None:
    m = await net.add_modem("huawei")
    m.set_fault(garbage_rate=1.0, force_echo=True)
    h = harness_factory(m.url)
    await h.modem.start()
    await h.modem.wait_ready(5)
    assert h.modem.info.manufacturer == "huawei"
    m.inject_garbage(b"\xff\x00\xfe\r\n\x80")
    mrs = await h.modem.send_text(HANDSET, LONG)
    assert [r.mr for r in m.sent] == mrs
    await net.inject_inbound(to=m.msisdn, sender=SENDER, text="ruido")
    await h.wait_for(lambda: len(h.inbound) == 1)


async def test_urc_inside_a_response_is_still_handled(
    net: SimNetwork, harness_factory: Factory
) -> None:
    m = await net.add_modem("simcom")
    h = harness_factory(m.url)
    await h.modem.start()
    await h.modem.wait_ready(5)
    await net.inject_inbound(to=m.msisdn, sender=SENDER, text="uno")
    await h.wait_for(lambda: len(h.inbound) == 1)
    m.urc_after_next_echo('+CMTI: "ME",7')  # points at an empty slot: read, found empty
    m.noise()
    assert len(await h.modem.send_text(HANDSET, "dos")) == 1
    assert h.modem.state is ModemState.READY


@pytest.mark.parametrize("profile", ["generic", "simcom", "quectel", "huawei"])
async def test_spontaneous_reboot_reinitialises(
    net: SimNetwork, clock: ManualClock, harness_factory: Factory, profile: str
) -> None:
    m = await net.add_modem(profile, pin="1234")
    h = harness_factory(m.url, pin="1234")
    await h.modem.start()
    await h.modem.wait_ready(5)
    await m.reboot()
    await h.wait_for(
        lambda: any(s is ModemState.INITIALISING and "rebooted" in r for s, r in h.states)
    )
    # Re-initialised in place, or (if a command was cut by the reboot) through a reopen.
    await settle(h, clock, lambda: h.modem.state is ModemState.READY)
    assert m.settings.cmgf == 0
    assert m.settings.cmee == 1
    assert m.settings.cnmi[1] == 1
    assert len(await h.modem.send_text(HANDSET, "tras reinicio")) == 1


async def test_late_boot_urc_does_not_reinitialise(
    net: SimNetwork, harness_factory: Factory
) -> None:
    m = await net.add_modem("simcom")
    h = harness_factory(m.url)
    await h.modem.start()
    await h.modem.wait_ready(5)
    m.emit_urc("SMS Ready")  # settings intact: not a reboot
    commands = len(m.events)
    await m.wait_event("command", contains="+CNMI?")
    assert len(await h.modem.send_text(HANDSET, "sigo aquí")) == 1
    assert not any(e.detail.startswith("+CMGF=") for e in m.events[commands:])
    assert [s for s, _ in h.states].count(ModemState.INITIALISING) == 1


async def test_periodic_sweep_finds_what_no_urc_announced(
    net: SimNetwork, clock: ManualClock, harness_factory: Factory
) -> None:
    m = await net.add_modem("generic")
    silent = dataclasses.replace(GENERIC, name="silent", cnmi_mt=0)  # stored, no +CMTI
    h = harness_factory(m.url, profile=silent)
    await h.modem.start()
    await h.modem.wait_ready(5)
    await net.inject_inbound(to=m.msisdn, sender=SENDER, text="sin aviso")
    await m.wait_event("stored")
    assert h.inbound == []
    await clock.advance(h.modem.sweep_interval + 1)
    await h.wait_for(lambda: len(h.inbound) == 1)
    assert h.inbound[0].received_via == "sweep"


@pytest.mark.parametrize("delete", [False, True])
async def test_undecodable_pdu_is_reported_not_handed_on(
    net: SimNetwork, harness_factory: Factory, delete: bool
) -> None:
    m = await net.add_modem("simcom")
    profile = dataclasses.replace(get_profile("simcom"), delete_undecodable=delete)
    h = harness_factory(m.url, profile=profile)
    await h.modem.start()
    await h.modem.wait_ready(5)
    with structlog.testing.capture_logs() as logs:
        m.deliver(bytes.fromhex("0004"), PduKind.DELIVER)  # SMS-DELIVER cut after one octet
        await m.wait_event("command", contains="+CMGR")
        left = await stored_after_next_sweep(h, m)
    assert h.inbound == []
    assert left == (0 if delete else 1)
    undecodable = [e for e in logs if e["event"] == "sms.undecodable"]
    assert undecodable[0]["pdu"] == "0004"
    assert len(undecodable) == 1  # reported once, not at every sweep


async def test_incoming_call_is_hung_up(net: SimNetwork, harness_factory: Factory) -> None:
    m = await net.add_modem("generic")
    h = harness_factory(m.url)
    await h.modem.start()
    await h.modem.wait_ready(5)
    m.emit_urc("RING")
    await m.wait_event("command", contains="H")
    assert any(e.kind == "command" and e.detail.upper() == "H" for e in m.events)


async def test_puk_needed_fails_without_trying(net: SimNetwork, harness_factory: Factory) -> None:
    m = await net.add_modem("simcom", pin="1234")
    m.sim.state = SimState.PUK
    h = harness_factory(m.url, pin="1234")
    await h.modem.start()
    await h.wait_for(lambda: h.modem.state is ModemState.FAILED)
    assert "PUK" in h.modem.state_reason
    assert not any(e.kind == "command" and e.detail.startswith("+CPIN=") for e in m.events)


async def test_port_lost_after_ctrl_z_is_unknown_outcome(
    net: SimNetwork, harness_factory: Factory
) -> None:
    m = await net.add_modem("quectel", latency=(100.0, 100.0))  # +CMGS never comes
    h = harness_factory(m.url)
    await h.modem.start()
    await h.modem.wait_ready(5)
    send = asyncio.create_task(h.modem.send_text(HANDSET, "¿y ahora?"))
    await m.wait_event("latency")  # the PDU and Ctrl-Z reached the modem
    m.disconnect()
    with pytest.raises(SendOutcomeUnknown, match="port lost"):
        await send
    await h.wait_for(lambda: h.seen(ModemState.GONE))
