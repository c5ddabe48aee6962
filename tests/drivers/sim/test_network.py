"""The network: handsets (reports by probability, replies, reassembly), modem to modem,
the per-SIM log and its JSONL copy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from drivers.clock import ManualClock
from drivers.pdu import Deliver, StatusCategory, StatusReport, decode, encode_submit
from drivers.sim import SimModem, SimNetwork
from tests.drivers.sim.atclient import PROMPT, AtClient, info_lines

CUSTOMER = "+34622222222"
CMTI = re.compile(rb'\+CMTI: "\w+",(\d+)\r\n')
CDS = re.compile(rb"\+CDS: \d+\r\n([0-9A-F]+)\r\n")


async def _send(client: AtClient, to: str, text: str, srr: bool = True) -> list[int]:
    mrs = []
    for part in encode_submit(to, text, srr=srr):
        await client.write(f"AT+CMGS={part.length}\r".encode())
        await client.read_until(PROMPT)
        await client.write(part.hex().encode() + b"\x1a")
        answer = await client.read_until(re.compile(rb"\+CMGS: (\d+)\r\n\r\nOK\r\n"))
        mrs.append(int(re.findall(rb"\+CMGS: (\d+)", answer)[0]))
    return mrs


async def _ready(net: SimNetwork, profile: str = "generic") -> tuple[SimModem, AtClient]:
    modem = await net.add_modem(profile)
    client = await AtClient.open(modem.url)
    await client.command("ATE0;+CMGF=0;+CNMI=2,1,0,1,0")
    return modem, client


async def test_handset_replies_baja_to_the_first_message(
    clock: ManualClock, net: SimNetwork
) -> None:
    net.add_handset(CUSTOMER, replies=["BAJA"], reply_delay=30.0)
    modem, client = await _ready(net)
    await _send(client, CUSTOMER, "Tu pedido ha salido", srr=False)
    await clock.advance(30.0)
    urc = await client.read_until(CMTI)
    index = int(CMTI.search(urc).group(1))  # type: ignore[union-attr]
    deliver = decode(info_lines(await client.command(f"AT+CMGR={index}"))[1])
    assert isinstance(deliver, Deliver)
    assert (deliver.sender, deliver.text) == (CUSTOMER, "BAJA")
    # Only the first message is answered.
    await _send(client, CUSTOMER, "Segundo aviso", srr=False)
    await clock.advance(60.0)
    assert [m.text for m in net.handset(CUSTOMER).received] == [
        "Tu pedido ha salido",
        "Segundo aviso",
    ]
    assert modem.stores["SM"].used == 1
    await client.close()


async def test_report_probabilities_are_seeded(clock: ManualClock) -> None:
    runs = []
    for _ in range(2):
        net = SimNetwork(clock=clock, seed=11, default_latency=(0.0, 0.0))
        net.add_handset(CUSTOMER, report={"delivered": 0.5, "failed": 0.3, "expired": 0.2})
        _modem, client = await _ready(net)
        await _send(client, CUSTOMER, "prob " * 200)  # 7 parts, one report each
        await clock.advance(5.0)
        statuses = []
        for _ in range(7):
            urc = await client.read_until(CDS)
            report = decode(CDS.search(urc).group(1).decode())  # type: ignore[union-attr]
            assert isinstance(report, StatusReport)
            statuses.append(report.status)
        runs.append(statuses)
        await client.close()
        await net.close()
    assert runs[0] == runs[1]
    assert {0x00, 0x41, 0x46} >= set(runs[0])
    assert len(set(runs[0])) > 1


async def test_failed_parts_do_not_reach_the_handset(clock: ManualClock, net: SimNetwork) -> None:
    net.add_handset(CUSTOMER, report="failed", report_delay=(1.0, 2.0))
    _modem, client = await _ready(net)
    [mr] = await _send(client, CUSTOMER, "no llega")
    await clock.advance(2.0)
    urc = await client.read_until(CDS)
    report = decode(CDS.search(urc).group(1).decode())  # type: ignore[union-attr]
    assert isinstance(report, StatusReport)
    assert (report.mr, report.category) == (mr, StatusCategory.FAILED_PERMANENT)
    assert net.handset(CUSTOMER).received == []
    await client.close()


async def test_network_without_reports(clock: ManualClock, net: SimNetwork) -> None:
    net.add_handset(CUSTOMER, reports=False)
    modem, client = await _ready(net)
    await _send(client, CUSTOMER, "sin informe")
    await clock.advance(600.0)
    assert not [e for e in modem.events if e.kind == "urc"]
    assert [m.text for m in net.handset(CUSTOMER).received] == ["sin informe"]
    await client.close()


async def test_multipart_between_two_modems(clock: ManualClock, net: SimNetwork) -> None:
    a, ca = await _ready(net, "simcom")
    b, cb = await _ready(net, "huawei")
    text = "Confirmación de envío número 42. " * 5
    await _send(ca, b.msisdn, text)
    indexes = []
    for _ in range(3):
        urc = await cb.read_until(CMTI)
        indexes.append(int(CMTI.search(urc).group(1)))  # type: ignore[union-attr]
    assert indexes == [0, 1, 2]
    parts = [decode(pdu) for pdu in info_lines(await cb.command("AT+CMGL=4"))[1::2]]
    delivered = [p for p in parts if isinstance(p, Deliver)]
    assert "".join(p.text for p in delivered) == text
    assert {p.sender for p in delivered} == {a.msisdn}
    assert [p.concat.seq for p in delivered if p.concat] == [1, 2, 3]
    # One delivered report per part, straight away (the target modem took them).
    await a.wait_event("urc", contains="+CDS:", count=3)
    await ca.close()
    await cb.close()


async def test_sent_log_is_the_oracle(clock: ManualClock, tmp_path: Path) -> None:
    log_path = tmp_path / "sent.jsonl"
    net = SimNetwork(clock=clock, seed=1, default_latency=(0.0, 0.0), sent_log=log_path)
    a, ca = await _ready(net)
    b, cb = await _ready(net, "quectel")
    await _send(ca, CUSTOMER, "uno")
    await clock.advance(10.0)
    await _send(cb, CUSTOMER, "dos " * 50)
    records = net.sent
    assert [(r.modem, r.iccid, r.part, r.parts) for r in records] == [
        (a.id, a.iccid, 1, 1),
        (b.id, b.iccid, 1, 2),
        (b.id, b.iccid, 2, 2),
    ]
    assert (records[1].time - records[0].time).total_seconds() == 10.0
    lines = [json.loads(x) for x in log_path.read_text().splitlines()]
    assert lines == [r.as_dict() for r in records]
    await ca.close()
    await cb.close()
    await net.close()


async def test_inject_inbound_to_unknown_number(net: SimNetwork) -> None:
    with pytest.raises(KeyError):
        await net.inject_inbound(to="+34699999999", sender=CUSTOMER, text="x")


async def test_bad_handset_scripts_are_refused(net: SimNetwork) -> None:
    with pytest.raises(ValueError, match="report"):
        net.add_handset(CUSTOMER, report="lost")
    with pytest.raises(ValueError, match="report"):
        net.add_handset(CUSTOMER, report={"delivered": 0.0})
    with pytest.raises(ValueError, match="report_delay"):
        net.add_handset(CUSTOMER, report_delay=(5.0, 1.0))
    await net.add_modem("generic", msisdn="+34600000001")
    with pytest.raises(ValueError, match="msisdn"):
        await net.add_modem("generic", msisdn="+34 600 000 001")
    with pytest.raises(ValueError, match="profile"):
        await net.add_modem("nokia")
