"""Faults, each observed on the wire: PIN/PUK, busy SIM, registration, lost ports, hangs,
garbage, forced echo, reboots, injected +CMS errors, URCs in the middle of a response."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest
import serial

from drivers.clock import ManualClock
from drivers.pdu import encode_submit
from drivers.sim import RegStat, SimModem, SimNetwork, SimState
from drivers.sim.faults import DEFAULT_LATENCY, Faults
from tests.drivers.sim.atclient import FINAL, PROMPT, AtClient, final_of, info_lines

HANDSET = "+34611111111"
CMTI = re.compile(rb'\+CMTI: "\w+",\d+\r\n')
PROMPT_OR_FINAL = re.compile(re.escape(PROMPT) + b"|" + FINAL.pattern)


async def _send(client: AtClient, text: str = "hola") -> str:
    part = encode_submit(HANDSET, text, srr=False)[0]
    await client.write(f"AT+CMGS={part.length}\r".encode())
    # A locked SIM or a dead network is refused before the prompt.
    first = await client.read_until(PROMPT_OR_FINAL)
    if not first.endswith(PROMPT):
        return first.decode()
    await client.write(part.hex().encode() + b"\x1a")
    return (await client.read_until(FINAL)).decode()


async def _open(modem: SimModem) -> AtClient:
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CMEE=1")
    return client


def test_default_latency_is_realistic() -> None:
    assert Faults().latency == DEFAULT_LATENCY == (1.5, 4.0)


async def test_pin_required_then_wrong_pins_lock_to_puk(net: SimNetwork) -> None:
    modem = await net.add_modem("simcom", pin="1234")
    client = await _open(modem)
    assert info_lines(await client.command("AT+CPIN?")) == ["+CPIN: SIM PIN"]
    assert final_of(await client.command("AT+CIMI")) == "+CME ERROR: 11"
    assert final_of(await _send(client)) == "+CMS ERROR: 311"
    assert info_lines(await client.command("AT+SPIC")) == ["+SPIC: 3,10,3,10"]
    for tries_left in (2, 1, 0):
        assert final_of(await client.command("AT+CPIN=0000")) == "+CME ERROR: 16"
        assert modem.sim.pin_tries == tries_left
    assert info_lines(await client.command("AT+CPIN?")) == ["+CPIN: SIM PUK"]
    assert final_of(await client.command("AT+CIMI")) == "+CME ERROR: 12"
    assert final_of(await client.command('AT+CPIN="87654321","4321"')) == "+CME ERROR: 16"
    assert final_of(await client.command('AT+CPIN="12345678","4321"')) == "OK"
    await client.read_until(b"+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n")
    assert info_lines(await client.command("AT+CPIN?")) == ["+CPIN: READY"]
    assert modem.sim.pin == "4321"
    assert info_lines(await client.command("AT+SPIC")) == ["+SPIC: 3,10,3,10"]
    await client.close()


@pytest.mark.parametrize(
    ("profile", "command", "answer"),
    [
        ("quectel", "AT+QPINC?", '+QPINC: "SC",2,10'),
        ("huawei", "AT^CPIN?", "^CPIN: SIM PIN,2,10,2,10,3"),
    ],
)
async def test_pin_tries_left_per_vendor(
    net: SimNetwork, profile: str, command: str, answer: str
) -> None:
    modem = await net.add_modem(profile, pin="1234")
    client = await _open(modem)
    await client.command("AT+CPIN=9999")
    assert info_lines(await client.command(command))[0] == answer
    await client.close()


async def test_sim_busy_after_pin(clock: ManualClock, net: SimNetwork) -> None:
    modem = await net.add_modem("simcom", pin="1234")
    modem.set_fault(sim_busy_after_pin=10.0)
    client = await _open(modem)
    assert final_of(await client.command("AT+CPIN=1234")) == "OK"
    await client.read_until(b"+CPIN: READY\r\n")
    assert final_of(await client.command("AT+CIMI")) == "+CME ERROR: 14"
    assert final_of(await client.command("AT+CPMS?")) == "+CMS ERROR: 314"
    await clock.advance(10.0)
    # SIM800 announces the end of the SIM's start-up.
    await client.read_until(b"SMS Ready\r\n")
    assert info_lines(await client.command("AT+CIMI")) == [modem.imsi]
    await client.close()


async def test_registration_lost_and_back(net: SimNetwork) -> None:
    modem = await net.add_modem("quectel")
    client = await _open(modem)
    await client.command("AT+CREG=1;+CEREG=1;+CNMI=2,1,0,0,0")
    modem.set_registration(RegStat.NOT_REGISTERED)
    await client.read_until(b"\r\n+CREG: 0\r\n")
    await client.read_until(b"\r\n+CEREG: 0\r\n")
    assert final_of(await _send(client)) == "+CMS ERROR: 331"
    assert info_lines(await client.command("AT+CSQ")) == ["+CSQ: 99,99"]
    assert info_lines(await client.command("AT+COPS?")) == ["+COPS: 0"]
    # Inbound waits in the network while the modem is not registered.
    await net.inject_inbound(to=modem.msisdn, sender=HANDSET, text="luego")
    assert modem.held_inbound == 1
    modem.set_registration(RegStat.HOME)
    await client.read_until(b"\r\n+CREG: 1\r\n")
    await client.read_until(CMTI)
    assert modem.held_inbound == 0
    assert "+CMGS:" in await _send(client)
    await client.close()


async def test_cfun_radio_off_and_reset(net: SimNetwork) -> None:
    modem = await net.add_modem("simcom")
    client = await _open(modem)
    await client.command("AT+CFUN=0")
    assert info_lines(await client.command("AT+CREG?")) == ["+CREG: 0,0"]
    assert final_of(await _send(client)) == "+CMS ERROR: 331"
    await client.command("AT+CFUN=1")
    assert info_lines(await client.command("AT+CREG?")) == ["+CREG: 0,1"]
    await client.command("AT+CMGF=1")
    assert final_of(await client.command("AT+CFUN=1,1")) == "OK"
    await client.read_until(b"SMS Ready\r\n")
    assert info_lines(await client.command("AT+CMGF?")) == ["+CMGF: 0"]
    await client.close()


async def test_pty_port_disappears_and_comes_back(net: SimNetwork, tmp_path: Path) -> None:
    link = str(tmp_path / "modem")
    modem = await net.add_modem("generic", link_path=link)
    assert await asyncio.to_thread(os.path.realpath, link) == modem.pty_path
    client = await _open(modem)
    modem.disconnect()
    assert not await asyncio.to_thread(os.path.exists, link)
    with pytest.raises((serial.SerialException, OSError)):
        await client.command("AT", seconds=1.0)
    await client.close()
    await modem.reconnect()
    assert await asyncio.to_thread(os.path.realpath, link) == modem.pty_path
    client = await AtClient.open(link)
    # Settings survive a port that only went away (ATE0 from before).
    assert await client.command("AT") == "\r\nOK\r\n"
    await client.close()


async def test_tcp_port_reset_and_comes_back(net: SimNetwork) -> None:
    modem = await net.add_modem("generic", transport="tcp")
    url = modem.url
    client = await _open(modem)
    modem.disconnect()
    with pytest.raises((serial.SerialException, OSError)):
        await client.command("AT", seconds=1.0)
    await client.close()
    with pytest.raises((serial.SerialException, OSError)):
        await AtClient.open(url)
    await modem.reconnect(reboot=True)
    assert modem.url == url
    client = await AtClient.open(url)
    assert await client.command("AT") == "AT\r\r\nOK\r\n"  # rebooted: echo is on again
    await client.close()


async def test_unresponsive_modem_reads_and_ignores(net: SimNetwork) -> None:
    modem = await net.add_modem("generic")
    client = await _open(modem)
    modem.set_fault(unresponsive=True)
    await client.write(b"ATI\r")
    await modem.wait_event("ignored", contains="ATI")
    modem.emit_urc("RING")
    modem.set_fault(unresponsive=False)
    # The first thing on the line is the answer to the next command: ATI and RING were lost.
    assert await client.command("AT+CMGF?") == "\r\n+CMGF: 0\r\n\r\nOK\r\n"
    assert "I" not in [e.detail for e in modem.events if e.kind == "command"]
    await client.close()


async def test_modem_stops_answering_after_ctrl_z(clock: ManualClock, net: SimNetwork) -> None:
    modem = await net.add_modem("generic", latency=(3.0, 3.0))
    client = await _open(modem)
    part = encode_submit(HANDSET, "unknown outcome", srr=False)[0]
    await client.write(f"AT+CMGS={part.length}\r".encode())
    await client.read_until(PROMPT)
    await client.write(part.hex().encode() + b"\x1a")
    await modem.wait_event("latency")
    modem.set_fault(unresponsive=True)
    await clock.advance(3.0)
    # The SMS went out, but the +CMGS answer never comes: the outcome is unknown to a driver.
    assert len(await modem.wait_sent(1)) == 1
    modem.set_fault(unresponsive=False)
    assert await client.command("AT") == "\r\nOK\r\n"
    await client.close()


async def test_garbage_on_the_line(net: SimNetwork) -> None:
    modem = await net.add_modem("generic")
    client = await _open(modem)
    modem.inject_garbage(b"\xff\xfe\x00")
    assert await client.command("AT") == "\xff\xfe\x00\r\nOK\r\n"
    modem.set_fault(garbage_rate=1.0)
    response = await client.command("AT")
    assert response.endswith("\r\nOK\r\n")
    assert len(response) == len("\r\nOK\r\n") + 8
    assert all(ord(ch) >= 0x80 for ch in response[:8])
    await client.close()


async def test_forced_echo(net: SimNetwork) -> None:
    modem = await net.add_modem("generic")
    client = await _open(modem)
    modem.set_fault(force_echo=True)
    assert await client.command("AT") == "AT\r\r\nOK\r\n"
    await client.close()


@pytest.mark.parametrize(
    ("profile", "boot"),
    [
        ("simcom", ["RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"]),
        ("quectel", ["RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE"]),
        ("huawei", ["^BOOT:20952181,0,0,0,72", "^SYSSTART"]),
    ],
)
async def test_spontaneous_reboot_forgets_settings(
    net: SimNetwork, profile: str, boot: list[str]
) -> None:
    modem = await net.add_modem(profile)
    client = await _open(modem)
    await client.command("AT+CMGF=1;+CNMI=1,2,0,0,0")
    await modem.reboot()
    text = (await client.read_until(f"{boot[-1]}\r\n".encode())).decode()
    assert [x for x in text.split("\r\n") if x] == boot
    assert await client.command("AT+CMGF?") == "AT+CMGF?\r\r\n+CMGF: 0\r\n\r\nOK\r\n"
    cnmi = ",".join(str(v) for v in modem.personality.default_cnmi)
    assert info_lines(await client.command("AT+CNMI?")) == [f"+CNMI: {cnmi}"]
    await client.close()


async def test_reboot_with_pin_locks_the_sim_again(net: SimNetwork) -> None:
    modem = await net.add_modem("simcom", pin="1234")
    client = await _open(modem)
    await client.command("AT+CPIN=1234")
    await client.read_until(b"SMS Ready\r\n")
    await modem.reboot()
    text = (await client.read_until(b"+CPIN: SIM PIN\r\n")).decode()
    assert "SMS Ready" not in text
    assert modem.sim.state is SimState.PIN
    await client.close()


@pytest.mark.parametrize(
    ("profile", "codes", "expected"), [("simcom", [], 500), ("generic", [42], 42)]
)
async def test_injected_cms_errors(
    net: SimNetwork, profile: str, codes: list[int], expected: int
) -> None:
    modem = await net.add_modem(profile)
    modem.set_fault(cms_error_rate=1.0, cms_error_codes=codes)
    client = await _open(modem)
    assert final_of(await _send(client)) == f"+CMS ERROR: {expected}"
    assert modem.sent == []
    await client.close()


async def test_cms_error_rate_is_seeded(clock: ManualClock) -> None:
    outcomes = []
    for _ in range(2):
        net = SimNetwork(clock=clock, seed=3, default_latency=(0.0, 0.0))
        modem = await net.add_modem("generic")
        modem.set_fault(cms_error_rate=0.5, cms_error_codes=[38, 42])
        client = await _open(modem)
        outcomes.append([final_of(await _send(client)) for _ in range(12)])
        await client.close()
        await net.close()
    assert outcomes[0] == outcomes[1]
    assert {"OK", "+CMS ERROR: 38", "+CMS ERROR: 42"} == set(outcomes[0])


async def test_urc_between_echo_and_final_result(net: SimNetwork) -> None:
    modem = await net.add_modem("generic")
    client = await AtClient.open(modem.url)
    modem.urc_after_next_echo('+CMTI: "SM",5')
    assert await client.command("AT+CSQ") == (
        'AT+CSQ\r\r\n+CMTI: "SM",5\r\n\r\n+CSQ: 20,99\r\n\r\nOK\r\n'
    )
    await client.close()


async def test_urcs_wait_while_the_prompt_is_open(net: SimNetwork) -> None:
    modem = await net.add_modem("generic")
    client = await _open(modem)
    part = encode_submit(HANDSET, "x", srr=False)[0]
    await client.write(f"AT+CMGS={part.length}\r".encode())
    await client.read_until(PROMPT)
    modem.emit_urc("RING")
    await client.write(part.hex().encode() + b"\x1a")
    response = (await client.read_until(b"RING\r\n")).decode()
    assert re.fullmatch(r"\r\n\+CMGS: \d+\r\n\r\nOK\r\n\r\nRING\r\n", response)
    await client.close()


async def test_huawei_noise_and_curc(net: SimNetwork) -> None:
    modem = await net.add_modem("huawei")
    client = await _open(modem)
    await client.command("AT^CURC=0")
    modem.noise()
    assert await client.read_until(b"\r\n") == b"\r\n"
    assert await client.read_until(b"\r\n") == b"RING\r\n"
    assert info_lines(await client.command("AT^CURC?")) == ["^CURC: 0"]
    await client.close()


async def test_periodic_noise_follows_the_clock(clock: ManualClock, net: SimNetwork) -> None:
    modem = await net.add_modem("huawei")
    client = await _open(modem)
    modem.set_fault(noise_interval=30.0)
    await clock.advance(90.0)
    await modem.wait_event("urc", count=3)
    noise = set(modem.personality.noise_urcs)
    urcs = [e.detail for e in modem.events if e.kind == "urc"]
    assert len(urcs) == 3
    assert set(urcs) <= noise
    modem.set_fault(noise_interval=0)
    await clock.advance(300.0)
    assert len([e for e in modem.events if e.kind == "urc"]) == 3
    await client.close()
