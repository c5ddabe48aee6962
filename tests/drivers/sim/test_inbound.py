"""Inbound SMS: stored with +CMTI, routed with +CMT (+CNMA), CMGR/CMGL/CMGD, full stores."""

from __future__ import annotations

import re

import pytest

from drivers.clock import ManualClock
from drivers.pdu import Deliver, decode, encode_submit
from drivers.sim import SimNetwork
from drivers.sim.storage import Stat
from tests.drivers.sim.atclient import FINAL, AtClient, final_of, info_lines

SENDER = "+34611111111"
CMTI = re.compile(rb'\+CMTI: "(\w+)",(\d+)\r\n')
CMT = re.compile(rb"\+CMT: ,(\d+)\r\n([0-9A-F]+)\r\n")


@pytest.mark.parametrize(
    ("profile", "memory", "first_index"),
    [("generic", "SM", 1), ("simcom", "SM", 1), ("quectel", "ME", 1), ("huawei", "SM", 0)],
)
async def test_stored_inbound_cmti_then_cmgr_and_cmgd(
    net: SimNetwork, profile: str, memory: str, first_index: int
) -> None:
    modem = await net.add_modem(profile, transport="tcp")
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CMGF=0;+CNMI=2,1,0,0,0")
    assert await net.inject_inbound(to=modem.msisdn, sender=SENDER, text="hola") == 1
    urc = await client.read_until(CMTI)
    mem, index = CMTI.search(urc).groups()  # type: ignore[union-attr]
    assert (mem.decode(), int(index)) == (memory, first_index)
    lines = info_lines(await client.command(f"AT+CMGR={int(index)}"))
    assert re.fullmatch(r"\+CMGR: 0,,\d+", lines[0])
    deliver = decode(lines[1])
    assert isinstance(deliver, Deliver)
    assert (deliver.sender, deliver.text) == (SENDER, "hola")
    # Read once: now REC READ (1).
    assert info_lines(await client.command(f"AT+CMGR={int(index)}"))[0].startswith("+CMGR: 1,")
    assert final_of(await client.command(f"AT+CMGD={int(index)}")) == "OK"
    assert final_of(await client.command(f"AT+CMGR={int(index)}")) == "+CMS ERROR: 321"
    await client.close()


async def test_multipart_inbound_arrives_as_parts(net: SimNetwork) -> None:
    modem = await net.add_modem("generic")
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CNMI=2,1,0,0,0")
    text = "x" * 300
    assert await net.inject_inbound(to=modem.msisdn, sender=SENDER, text=text) == 2
    await client.read_until(CMTI)
    await client.read_until(CMTI)
    lines = info_lines(await client.command("AT+CMGL=4"))
    assert [re.match(r"\+CMGL: (\d+),0,,\d+", x).group(1) for x in lines[::2]] == ["1", "2"]  # type: ignore[union-attr]
    parts = [decode(pdu) for pdu in lines[1::2]]
    assert all(isinstance(p, Deliver) for p in parts)
    concat = [p.concat for p in parts if isinstance(p, Deliver)]
    assert [(c.seq, c.total) for c in concat if c] == [(1, 2), (2, 2)]
    assert "".join(p.text for p in parts if isinstance(p, Deliver)) == text
    await client.close()


async def test_cmgl_stat_filters_and_text_mode(net: SimNetwork) -> None:
    modem = await net.add_modem("generic")
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CNMI=2,1,0,0,0")
    for text in ("uno", "dos"):
        await net.inject_inbound(to=modem.msisdn, sender=SENDER, text=text)
        await client.read_until(CMTI)
    await client.command("AT+CMGR=1")
    unread = info_lines(await client.command("AT+CMGL=0"))
    read = info_lines(await client.command("AT+CMGL=1"))
    assert unread[0].startswith("+CMGL: 2,0,")
    assert read[0].startswith("+CMGL: 1,1,")
    assert info_lines(await client.command("AT+CMGL=2")) == []
    # CMGL marks what it lists as read.
    assert info_lines(await client.command("AT+CMGL=0")) == []
    await client.command("AT+CMGF=1")
    listing = info_lines(await client.command('AT+CMGL="ALL"'))
    assert listing[0] == f'+CMGL: 1,"REC READ","{SENDER}",,"26/01/05,09:00:00+00"'
    assert listing[1] == "uno"
    assert listing[3] == "dos"
    assert final_of(await client.command("AT+CMGL=4")) == "+CMS ERROR: 302"
    assert info_lines(await client.command("AT+CMGL=?"))[0].startswith('+CMGL: ("REC UNREAD"')
    record = info_lines(await client.command("AT+CMGR=2"))
    assert record == [f'+CMGR: "REC READ","{SENDER}",,"26/01/05,09:00:00+00"', "dos"]
    await client.close()


@pytest.mark.parametrize(("delflag", "left"), [(1, [3]), (4, [])])
async def test_cmgd_delflags(net: SimNetwork, delflag: int, left: list[int]) -> None:
    modem = await net.add_modem("generic")
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CNMI=2,1,0,0,0")
    for text in ("a", "b", "c"):
        await net.inject_inbound(to=modem.msisdn, sender=SENDER, text=text)
        await client.read_until(CMTI)
    await client.command("AT+CMGR=1;+CMGR=2")
    assert final_of(await client.command(f"AT+CMGD=1,{delflag}")) == "OK"
    assert [i for i, _ in modem.stores["SM"].listing(Stat.ALL)] == left
    await client.close()


async def test_routed_direct_cmt_with_cnma(clock: ManualClock, net: SimNetwork) -> None:
    modem = await net.add_modem("generic")
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CSMS=1;+CNMI=2,2,0,0,0")
    await net.inject_inbound(to=modem.msisdn, sender=SENDER, text="directo")
    await net.inject_inbound(to=modem.msisdn, sender=SENDER, text="segundo")
    urc = await client.read_until(CMT)
    length, pdu = CMT.search(urc).groups()  # type: ignore[union-attr]
    deliver = decode(pdu.decode())
    assert isinstance(deliver, Deliver)
    assert deliver.text == "directo"
    assert int(length) == len(bytes.fromhex(pdu.decode())) - 8  # SMSC field: 1 + 7 octets
    # The second waits for the acknowledgement of the first.
    assert modem.held_inbound == 1
    assert final_of(await client.command("AT+CNMA")) == "OK"
    urc = await client.read_until(CMT)
    assert decode(CMT.search(urc).group(2).decode()).text == "segundo"  # type: ignore[union-attr]
    assert final_of(await client.command("AT+CNMA")) == "OK"
    assert final_of(await client.command("AT+CNMA")) == "+CMS ERROR: 340"
    assert modem.stores["SM"].used == 0
    await client.close()


async def test_missing_cnma_turns_routing_off(clock: ManualClock, net: SimNetwork) -> None:
    modem = await net.add_modem("generic")
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CSMS=1;+CNMI=2,2,0,0,0")
    await net.inject_inbound(to=modem.msisdn, sender=SENDER, text="sin ack")
    await client.read_until(CMT)
    await clock.advance(15.0)
    await modem.wait_event("cnma-timeout")
    assert info_lines(await client.command("AT+CNMI?")) == ["+CNMI: 2,0,0,0,0"]
    # The network retried: the SMS is now stored, silently (mt=0).
    assert modem.stores["SM"].used == 1
    await client.close()


async def test_huawei_routes_and_stores(net: SimNetwork) -> None:
    modem = await net.add_modem("huawei")
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CNMI=2,2,0,0,0")
    await net.inject_inbound(to=modem.msisdn, sender=SENDER, text="dos veces")
    await client.read_until(CMT)
    lines = info_lines(await client.command("AT+CMGL=4"))
    assert lines[0].startswith("+CMGL: 0,0,,")
    await client.close()


async def test_text_mode_cmt(net: SimNetwork) -> None:
    modem = await net.add_modem("simcom")
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CMGF=1;+CNMI=2,2,0,0,0")
    await net.inject_inbound(to=modem.msisdn, sender=SENDER, text="texto")
    urc = await client.read_until(b"texto\r\n")
    assert urc == f'\r\n+CMT: "{SENDER}",,"26/01/05,09:00:00+00"\r\ntexto\r\n'.encode()
    await client.close()


async def test_full_store_322_and_inbound_held_until_space(net: SimNetwork) -> None:
    modem = await net.add_modem("generic")
    modem.stores["SM"].capacity = 2
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CNMI=2,1,0,0,0")
    for text in ("a", "b", "c"):
        await net.inject_inbound(to=modem.msisdn, sender=SENDER, text=text)
    await client.read_until(CMTI)
    await client.read_until(CMTI)
    assert modem.held_inbound == 1
    assert info_lines(await client.command("AT+CPMS?"))[0].startswith('+CPMS: "SM",2,2')
    part = encode_submit(SENDER, "draft", srr=False)[0]
    await client.write(f"AT+CMGW={part.length}\r".encode())
    await client.read_until(b"> ")
    await client.write(part.hex().encode() + b"\x1a")
    assert await client.read_until(FINAL) == b"\r\n+CMS ERROR: 322\r\n"
    # Deleting one makes room: the network delivers what it held, with its +CMTI.
    await client.command("AT+CMGD=1")
    urc = await client.read_until(CMTI)
    assert CMTI.search(urc).group(2) == b"1"  # type: ignore[union-attr]
    assert modem.held_inbound == 0
    await client.close()


async def test_modem_to_modem(clock: ManualClock, net: SimNetwork) -> None:
    a = await net.add_modem("simcom")
    b = await net.add_modem("quectel", transport="tcp")
    ca, cb = await AtClient.open(a.url), await AtClient.open(b.url)
    await ca.command("ATE0;+CMGF=1;+CNMI=2,1,0,1,0;+CSMP=49,167,0,0")
    await cb.command("ATE0;+CNMI=2,1,0,0,0")
    await ca.write(f'AT+CMGS="{b.msisdn}"\r'.encode())
    await ca.read_until(b"> ")
    await ca.write(b"entre modems\x1a")
    await ca.read_until(b"OK\r\n")
    urc = await cb.read_until(CMTI)
    index = int(CMTI.search(urc).group(2))  # type: ignore[union-attr]
    deliver = decode(info_lines(await cb.command(f"AT+CMGR={index}"))[1])
    assert isinstance(deliver, Deliver)
    assert (deliver.sender, deliver.text) == (a.msisdn, "entre modems")
    # Text mode status report (+CSMP fo 49 asks for one).
    await clock.advance(1.0)
    cds = (await ca.read_until(re.compile(rb"\+CDS: [^\r]*\r\n"))).decode()
    assert cds.strip().startswith(f'+CDS: 6,{a.sent[0].mr},"{b.msisdn}",145,')
    assert cds.strip().endswith(",0")
    await ca.close()
    await cb.close()


async def test_status_report_not_blocked_by_a_full_store(
    clock: ManualClock, net: SimNetwork
) -> None:
    modem = await net.add_modem("generic")
    modem.stores["SM"].capacity = 1
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CNMI=2,1,0,1,0")
    for text in ("ocupa", "espera"):
        await net.inject_inbound(to=modem.msisdn, sender=SENDER, text=text)
    assert modem.held_inbound == 1
    part = encode_submit(SENDER, "con informe")[0]
    await client.write(f"AT+CMGS={part.length}\r".encode())
    await client.read_until(b"> ")
    await client.write(part.hex().encode() + b"\x1a")
    await client.read_until(b"OK\r\n")
    await clock.advance(5.0)
    await client.read_until(re.compile(rb"\+CDS: \d+\r\n[0-9A-F]+\r\n"))
    assert modem.held_inbound == 1
    await client.close()
