"""The basic AT command set per personality, over a real pty and over TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from drivers.sim import SimModem, SimNetwork
from tests.drivers.sim.atclient import AtClient, final_of, info_lines

PROFILES = ["generic", "simcom", "quectel", "huawei"]


@pytest.fixture(params=["pty", "tcp"])
async def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _client(modem: SimModem) -> AtClient:
    return await AtClient.open(modem.url)


@pytest.fixture
async def opened(net: SimNetwork, transport: str) -> AsyncIterator[tuple[SimModem, AtClient]]:
    modem = await net.add_modem("generic", transport=transport)
    client = await _client(modem)
    yield modem, client
    await client.close()


async def test_at_is_echoed_then_ok_and_ate0_stops_echo(
    opened: tuple[SimModem, AtClient],
) -> None:
    _modem, client = opened
    assert await client.command("AT") == "AT\r\r\nOK\r\n"
    assert await client.command("ATE0") == "ATE0\r\r\nOK\r\n"
    assert await client.command("AT") == "\r\nOK\r\n"
    assert await client.command("ATE1") == "\r\nOK\r\n"
    assert await client.command("AT") == "AT\r\r\nOK\r\n"


async def test_identification(opened: tuple[SimModem, AtClient]) -> None:
    modem, client = opened
    await client.command("ATE0")
    assert info_lines(await client.command("AT+CGMI")) == ["SIMULATED"]
    assert info_lines(await client.command("AT+CGMM")) == ["SIM-27005"]
    assert info_lines(await client.command("AT+CGSN")) == [modem.imei]
    assert info_lines(await client.command("AT+CIMI")) == [modem.imsi]
    assert info_lines(await client.command("AT+CCID")) == [f"+CCID: {modem.iccid}"]
    assert final_of(await client.command("AT+CGMI=?")) == "OK"
    assert len(modem.imei) == 15
    assert modem.iccid.startswith("89")


@pytest.mark.parametrize(
    ("profile", "command", "expected"),
    [
        ("generic", "AT+CCID", "+CCID: {iccid}"),
        ("simcom", "AT+CCID", "{iccid}"),
        ("quectel", "AT+QCCID", "+QCCID: {iccid}"),
        ("huawei", "AT^ICCID?", "^ICCID: {iccid}"),
    ],
)
async def test_iccid_command_per_personality(
    net: SimNetwork, profile: str, command: str, expected: str
) -> None:
    modem = await net.add_modem(profile, pin="1234")
    client = await _client(modem)
    # Readable before the PIN (DESIGN.md, Decisions: Identity).
    response = await client.command(command)
    assert info_lines(response) == [expected.format(iccid=modem.iccid)]
    await client.close()


@pytest.mark.parametrize(
    ("profile", "cmee", "final"),
    [
        ("generic", 0, "ERROR"),
        ("generic", 1, "+CME ERROR: 100"),
        ("generic", 2, "+CME ERROR: unknown"),
        ("simcom", 0, "ERROR"),
        ("huawei", 0, "COMMAND NOT SUPPORT"),
        ("huawei", 1, "COMMAND NOT SUPPORT"),
    ],
)
async def test_unknown_command_final_result(
    net: SimNetwork, profile: str, cmee: int, final: str
) -> None:
    modem = await net.add_modem(profile)
    client = await _client(modem)
    await client.command(f"AT+CMEE={cmee}")
    assert final_of(await client.command("AT+NOPE")) == final
    # The other personalities do not know Huawei's ICCID command, and vice versa.
    other = "AT+CCID" if profile == "huawei" else "AT^ICCID?"
    assert final_of(await client.command(other)) == final
    await client.close()


@pytest.mark.parametrize("profile", PROFILES)
async def test_sms_settings_round_trip(net: SimNetwork, profile: str) -> None:
    modem = await net.add_modem(profile)
    client = await _client(modem)
    await client.command("ATE0")
    assert final_of(await client.command("AT+CMGF=1")) == "OK"
    assert info_lines(await client.command("AT+CMGF?")) == ["+CMGF: 1"]
    assert info_lines(await client.command("AT+CMGF=?")) == ["+CMGF: (0,1)"]
    assert info_lines(await client.command('AT+CSCS="GSM"')) == []
    assert info_lines(await client.command("AT+CSCS?")) == ['+CSCS: "GSM"']
    assert "UCS2" in info_lines(await client.command("AT+CSCS=?"))[0]
    assert info_lines(await client.command("AT+CSMS=1")) == ["+CSMS: 1,1,1"]
    assert info_lines(await client.command("AT+CSCA?")) == ['+CSCA: "+34609000000",145']
    assert info_lines(await client.command("AT+CSMP=49,167,0,0")) == []
    assert info_lines(await client.command("AT+CSMP?")) == ["+CSMP: 49,167,0,0"]
    mem = modem.personality.default_memory
    cap = modem.stores[mem].capacity
    assert info_lines(await client.command("AT+CPMS?")) == [
        f'+CPMS: "{mem}",0,{cap},"{mem}",0,{cap},"{mem}",0,{cap}'
    ]
    assert "SR" in info_lines(await client.command("AT+CPMS=?"))[0]
    sr, me = modem.stores["SR"].capacity, modem.stores["ME"].capacity
    assert info_lines(await client.command('AT+CPMS="SR","ME","ME"')) == [
        f"+CPMS: 0,{sr},0,{me},0,{me}"
    ]
    assert final_of(await client.command('AT+CPMS="XX"')) == "+CMS ERROR: 302"
    assert info_lines(await client.command("AT+CSQ")) == ["+CSQ: 20,99"]
    assert info_lines(await client.command("AT+CREG?")) == ["+CREG: 0,1"]
    assert info_lines(await client.command("AT+CREG=2;+CREG?")) == ['+CREG: 2,1,"1A2B","C3F0"']
    assert info_lines(await client.command("AT+COPS?"))[0].startswith('+COPS: 0,0,"SIMNET"')
    assert info_lines(await client.command("AT+CFUN?")) == ["+CFUN: 1"]
    await client.close()


async def test_cereg_only_where_the_modem_has_lte(net: SimNetwork) -> None:
    quectel = await net.add_modem("quectel")
    simcom = await net.add_modem("simcom")
    q, s = await _client(quectel), await _client(simcom)
    assert info_lines(await q.command("AT+CEREG?")) == ["+CEREG: 0,1"]
    assert final_of(await s.command("AT+CEREG?")) == "ERROR"
    await q.close()
    await s.close()


async def test_cnmi_rejections_are_per_personality(net: SimNetwork) -> None:
    simcom = await net.add_modem("simcom")
    generic = await net.add_modem("generic")
    s, g = await _client(simcom), await _client(generic)
    # SIM800 cannot do mt=3; a generic 27.005 modem can.
    assert final_of(await s.command("AT+CNMI=2,3,0,0,0")) == "+CMS ERROR: 303"
    assert final_of(await g.command("AT+CNMI=2,3,0,0,0")) == "OK"
    assert info_lines(await s.command("AT+CNMI?")) == ["+CNMI: 2,1,0,0,0"]
    assert info_lines(await g.command("AT+CNMI?")) == ["+CNMI: 2,3,0,0,0"]
    assert info_lines(await s.command("AT+CNMI=?")) == ["+CNMI: (0-2),(0-2),(0,2),(0,1),(0,1)"]
    await s.close()
    await g.close()


async def test_chained_commands_and_error_stops_the_chain(
    opened: tuple[SimModem, AtClient],
) -> None:
    modem, client = opened
    response = await client.command("AT+CMGF=1;+CMGF?;+CSQ")
    assert info_lines(response) == ["+CMGF: 1", "+CSQ: 20,99"]
    response = await client.command("AT+CMGF=0;+BOGUS;+CMGF=1")
    assert final_of(response) == "ERROR"
    assert modem.settings.cmgf == 0


async def test_cmee_verbose_errors(opened: tuple[SimModem, AtClient]) -> None:
    _modem, client = opened
    assert final_of(await client.command("AT+CMEE=2;+CMGR=999")) == (
        "+CMS ERROR: invalid memory index"
    )
    assert final_of(await client.command("AT+CMEE=1;+CMGR=999")) == "+CMS ERROR: 321"
    assert info_lines(await client.command("AT+CMEE?")) == ["+CMEE: 1"]


async def test_ati_and_atz(net: SimNetwork) -> None:
    modem = await net.add_modem("huawei")
    client = await _client(modem)
    assert info_lines(await client.command("ATI"))[0] == "Manufacturer: huawei"
    await client.command("ATE0;+CMGF=1")
    assert await client.command("ATZ") == "\r\nOK\r\n"
    # ATZ restores power-on settings: echo back on, PDU mode.
    assert info_lines(await client.command("AT+CMGF?")) == ["+CMGF: 0"]
    await client.close()


async def test_garbage_before_at_is_skipped(opened: tuple[SimModem, AtClient]) -> None:
    _modem, client = opened
    await client.command("ATE0")
    await client.write(b"\xff\x00zz\r")
    assert await client.command("\xfe\xfeAT+CMGF?") == "\r\n+CMGF: 0\r\n\r\nOK\r\n"


async def test_qualcomm_huawei_swaps_iccid_digits(net: SimNetwork) -> None:
    modem = await net.add_modem("huawei-qualcomm", iccid="8934071100000000019")
    client = await _client(modem)
    # Pairs swapped as stored on the SIM, odd length padded with F, in quotes.
    assert info_lines(await client.command("AT^ICCID?")) == ['^ICCID: "984370110000000010F9"']
    await client.close()
