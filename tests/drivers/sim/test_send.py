"""The send dialogue: AT+CMGS in PDU and text mode, multi-part, MR, latency, status reports."""

from __future__ import annotations

import re

import pytest

from drivers.clock import ManualClock
from drivers.pdu import StatusCategory, StatusReport, decode, encode_submit
from drivers.sim import SimNetwork
from tests.drivers.sim.atclient import PROMPT, AtClient, final_of, info_lines

HANDSET = "+34611111111"


async def send_pdu(client: AtClient, to: str, text: str, **kwargs: object) -> list[int]:
    """The whole dialogue per part; returns the MRs the modem gave."""
    mrs = []
    for part in encode_submit(to, text, **kwargs):  # type: ignore[arg-type]
        await client.write(f"AT+CMGS={part.length}\r".encode())
        await client.read_until(PROMPT)
        await client.write(part.hex().encode() + b"\x1a")
        response = (await client.read_until(re.compile(rb"\r\n(OK|.*ERROR.*)\r\n"))).decode()
        match = re.search(r"\+CMGS: (\d+)", response)
        assert match, response
        mrs.append(int(match.group(1)))
    return mrs


@pytest.mark.parametrize("profile", ["generic", "simcom", "quectel", "huawei"])
@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_pdu_send_dialogue(net: SimNetwork, profile: str, transport: str) -> None:
    modem = await net.add_modem(profile, transport=transport)
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CMGF=0")
    part = encode_submit(HANDSET, "hola", srr=False)[0]
    await client.write(f"AT+CMGS={part.length}\r".encode())
    # The prompt has no line end after it.
    assert await client.read_until(PROMPT) == b"\r\n> "
    await client.write(part.hex().encode() + b"\x1a")
    response = (await client.read_until(b"OK\r\n")).decode()
    assert re.fullmatch(r"\r\n\+CMGS: \d+\r\n\r\nOK\r\n", response)
    sent = await modem.wait_sent(1)
    assert (sent[0].recipient, sent[0].text, sent[0].iccid) == (HANDSET, "hola", modem.iccid)
    assert sent[0].mr == int(response.split()[1])
    received = await net.handset(HANDSET).wait_received(1)
    assert received[0].text == "hola"
    assert received[0].sender == modem.msisdn
    await client.close()


async def test_echo_on_prints_command_prompt_and_pdu(net: SimNetwork) -> None:
    modem = await net.add_modem("simcom")
    client = await AtClient.open(modem.url)
    part = encode_submit(HANDSET, "eco", srr=False)[0]
    await client.write(f"AT+CMGS={part.length}\r".encode())
    assert await client.read_until(PROMPT) == f"AT+CMGS={part.length}\r\r\n> ".encode()
    await client.write(part.hex().encode() + b"\x1a")
    response = await client.read_until(b"OK\r\n")
    assert response.startswith(part.hex().encode() + b"\r\n+CMGS: ")
    await client.close()


async def test_multipart_send_reassembled_by_handset_and_mr_increments(
    net: SimNetwork,
) -> None:
    modem = await net.add_modem("generic")
    client = await AtClient.open(modem.url)
    await client.command("ATE0")
    text = "Su envío ha salido del almacén. " * 6
    mrs = await send_pdu(client, HANDSET, text, srr=False, concat_ref=42)
    assert len(mrs) == 3
    assert [(mrs[0] + i) % 256 for i in range(3)] == mrs
    sent = await modem.wait_sent(3)
    assert [(r.part, r.parts, r.concat_ref) for r in sent] == [(1, 3, 42), (2, 3, 42), (3, 3, 42)]
    assert "".join(r.text for r in sent) == text
    assert sent[0].encoding == "ucs2"
    received = await net.handset(HANDSET).wait_received(1)
    assert received == [received[0]]
    assert received[0].text == text
    assert received[0].parts == 3
    await client.close()


async def test_mr_wraps_at_256(net: SimNetwork) -> None:
    modem = await net.add_modem("generic")
    client = await AtClient.open(modem.url)
    await client.command("ATE0")
    modem._mr = 254  # start just below the wrap instead of sending 250 messages
    assert await send_pdu(client, HANDSET, "a", srr=False) == [255]
    assert await send_pdu(client, HANDSET, "b", srr=False) == [0]
    await client.close()


async def test_escape_at_prompt_aborts_without_sending(net: SimNetwork) -> None:
    modem = await net.add_modem("generic")
    client = await AtClient.open(modem.url)
    await client.command("ATE0")
    await client.write(b"AT+CMGS=20\r")
    await client.read_until(PROMPT)
    await client.write(b"0011\x1b")
    assert await client.read_until(b"OK\r\n") == b"\r\nOK\r\n"
    assert modem.sent == []
    await client.close()


@pytest.mark.parametrize(("length_delta", "pdu_suffix"), [(1, ""), (0, "ZZ")])
async def test_bad_pdu_is_rejected_with_304(
    net: SimNetwork, length_delta: int, pdu_suffix: str
) -> None:
    modem = await net.add_modem("generic")
    client = await AtClient.open(modem.url)
    await client.command("ATE0")
    part = encode_submit(HANDSET, "x", srr=False)[0]
    await client.write(f"AT+CMGS={part.length + length_delta}\r".encode())
    await client.read_until(PROMPT)
    await client.write((part.hex() + pdu_suffix).encode() + b"\x1a")
    assert await client.read_until(b"\r\n+CMS ERROR: 304\r\n")
    assert modem.sent == []
    await client.close()


async def test_text_mode_send(net: SimNetwork) -> None:
    modem = await net.add_modem("simcom")
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CMGF=1")
    await client.write(f'AT+CMGS="{HANDSET}"\r'.encode())
    await client.read_until(PROMPT)
    await client.write(b"hola texto\x1a")
    response = (await client.read_until(b"OK\r\n")).decode()
    assert re.fullmatch(r"\r\n\+CMGS: \d+\r\n\r\nOK\r\n", response)
    received = await net.handset(HANDSET).wait_received(1)
    assert received[0].text == "hola texto"
    await client.close()


async def test_latency_uses_the_clock(clock: ManualClock, net: SimNetwork) -> None:
    modem = await net.add_modem("generic", latency=(2.0, 2.0))
    client = await AtClient.open(modem.url)
    await client.command("ATE0")
    part = encode_submit(HANDSET, "slow", srr=False)[0]
    await client.write(f"AT+CMGS={part.length}\r".encode())
    await client.read_until(PROMPT)
    await client.write(part.hex().encode() + b"\x1a")
    await modem.wait_event("latency")
    assert modem.sent == []
    start = clock.now()
    await clock.advance(2.0)
    await client.read_until(b"OK\r\n")
    assert (modem.sent[0].time - start).total_seconds() == 2.0
    await client.close()


async def test_held_send_waits_for_release_then_leaves(clock: ManualClock, net: SimNetwork) -> None:
    modem = await net.add_modem("generic", latency=(0.0, 0.0))
    modem.set_fault(hold_sends=True)
    client = await AtClient.open(modem.url)
    await client.command("ATE0")
    part = encode_submit(HANDSET, "held", srr=False)[0]
    await client.write(f"AT+CMGS={part.length}\r".encode())
    await client.read_until(PROMPT)
    await client.write(part.hex().encode() + b"\x1a")
    await modem.wait_event("held", contains=HANDSET)
    await clock.advance(300.0)  # held regardless of time passing: only a release lets it go
    assert modem.sent == []
    modem.set_fault(hold_sends=False)
    await client.read_until(b"OK\r\n")
    assert [r.text for r in modem.sent] == ["held"]
    await client.close()


async def test_held_prompt_waits_for_release_and_esc_sends_nothing(net: SimNetwork) -> None:
    modem = await net.add_modem("generic", latency=(0.0, 0.0))
    modem.set_fault(hold_prompt=True)
    client = await AtClient.open(modem.url)
    await client.command("ATE0")
    part = encode_submit(HANDSET, "held", srr=False)[0]
    await client.write(f"AT+CMGS={part.length}\r".encode())
    await modem.wait_event("prompt_held")
    modem.set_fault(hold_prompt=False)
    await client.read_until(PROMPT)
    await client.write(b"\x1b")  # the host changed its mind at the prompt
    await client.read_until(b"OK\r\n")
    assert modem.sent == []
    await client.close()


async def test_status_report_as_cds(clock: ManualClock, net: SimNetwork) -> None:
    net.add_handset(HANDSET, report="delivered", report_delay=5.0)
    modem = await net.add_modem("generic")
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CNMI=2,1,0,1,0")
    [mr] = await send_pdu(client, HANDSET, "dlr please")
    await clock.advance(5.0)
    urc = (await client.read_until(re.compile(rb"\+CDS: \d+\r\n[0-9A-F]+\r\n"))).decode()
    length, pdu = re.findall(r"\+CDS: (\d+)\r\n([0-9A-F]+)", urc)[0]
    report = decode(pdu)
    assert isinstance(report, StatusReport)
    assert (report.mr, report.recipient, report.category) == (
        mr,
        HANDSET,
        StatusCategory.DELIVERED,
    )
    assert int(length) == len(bytes.fromhex(pdu)) - bytes.fromhex(pdu)[0] - 1
    await client.close()


@pytest.mark.parametrize(
    ("outcome", "category"),
    [("failed", StatusCategory.FAILED_PERMANENT), ("expired", StatusCategory.FAILED_PERMANENT)],
)
async def test_status_report_stored_as_cdsi_then_read(
    clock: ManualClock, net: SimNetwork, outcome: str, category: StatusCategory
) -> None:
    net.add_handset(HANDSET, report=outcome, report_delay=3.0)
    modem = await net.add_modem("huawei")
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CNMI=2,1,0,2,0")
    [mr] = await send_pdu(client, HANDSET, "will fail")
    await clock.advance(3.0)
    urc = await client.read_until(re.compile(rb'\+CDSI: "SR",\d+\r\n'))
    index = int(re.findall(rb'"SR",(\d+)', urc)[0])
    assert index == 0  # Huawei numbers slots from 0
    response = await client.command(f'AT+CPMS="SR";+CMGR={index}')
    pdu = info_lines(response)[-1]
    report = decode(pdu)
    assert isinstance(report, StatusReport)
    assert report.mr == mr
    assert report.category is category
    assert final_of(await client.command(f"AT+CMGD={index}")) == "OK"
    assert modem.stores["SR"].used == 0
    assert net.handset(HANDSET).received == []
    await client.close()


async def test_pending_report_then_final(clock: ManualClock, net: SimNetwork) -> None:
    net.add_handset(HANDSET, report="delivered", report_delay=4.0, pending_first=True)
    modem = await net.add_modem("generic")
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CNMI=2,1,0,1,0")
    await send_pdu(client, HANDSET, "pending")
    await clock.advance(4.0)
    statuses = []
    for _ in range(2):
        urc = (await client.read_until(re.compile(rb"\+CDS: \d+\r\n[0-9A-F]+\r\n"))).decode()
        report = decode(urc.split()[-1])
        assert isinstance(report, StatusReport)
        statuses.append(report.category)
    assert statuses == [StatusCategory.PENDING, StatusCategory.DELIVERED]
    await client.close()


async def test_no_report_requested_means_none_sent(clock: ManualClock, net: SimNetwork) -> None:
    modem = await net.add_modem("generic")
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CNMI=2,1,0,1,0")
    await send_pdu(client, HANDSET, "no dlr", srr=False)
    await clock.advance(60.0)
    # Nothing was routed: the next command's answer is the first thing on the line.
    assert await client.command("AT") == "\r\nOK\r\n"
    assert not [e for e in modem.events if e.kind == "urc"]
    await client.close()


async def test_text_mode_send_with_ucs2_charset(net: SimNetwork) -> None:
    modem = await net.add_modem("quectel")
    client = await AtClient.open(modem.url)
    await client.command('ATE0;+CMGF=1;+CSCS="UCS2"')
    to = HANDSET.encode("utf-16-be").hex().upper()
    await client.write(f'AT+CMGS="{to}"\r'.encode())
    await client.read_until(PROMPT)
    await client.write("envío ✓".encode("utf-16-be").hex().upper().encode() + b"\x1a")
    await client.read_until(b"OK\r\n")
    [record] = await modem.wait_sent(1)
    assert (record.recipient, record.text, record.encoding) == (HANDSET, "envío ✓", "ucs2")
    await client.close()


async def test_write_to_storage_then_send_from_it(clock: ManualClock, net: SimNetwork) -> None:
    modem = await net.add_modem("simcom")
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CNMI=2,1,0,1,0")
    part = encode_submit(HANDSET, "guardado")[0]
    await client.write(f"AT+CMGW={part.length}\r".encode())
    await client.read_until(PROMPT)
    await client.write(part.hex().encode() + b"\x1a")
    [line] = info_lines((await client.read_until(b"OK\r\n")).decode())
    index = int(line.removeprefix("+CMGW: "))
    assert info_lines(await client.command(f"AT+CMGR={index}"))[0].startswith("+CMGR: 2,,")
    [answer] = info_lines(await client.command(f"AT+CMSS={index}"))
    mr = int(answer.removeprefix("+CMSS: "))
    assert info_lines(await client.command(f"AT+CMGR={index}"))[0].startswith("+CMGR: 3,,")
    assert [(r.recipient, r.text, r.mr) for r in modem.sent] == [(HANDSET, "guardado", mr)]
    await client.command("AT+CMGF=1")
    assert info_lines(await client.command(f"AT+CMGR={index}")) == [
        f'+CMGR: "STO SENT","{HANDSET}",',
        "guardado",
    ]
    assert final_of(await client.command("AT+CMSS=29")) == "+CMS ERROR: 321"
    await client.close()
