"""AtChannel against byte-level fakes over a pty and a 127.0.0.1 TCP socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from drivers.at import (
    AtChannel,
    AtError,
    AtTimeout,
    CmeError,
    CmsError,
    PortGone,
    PromptAborted,
    Urc,
)
from tests.drivers.at.fakes import FakeModem

PDU = "0011000B914356214365F70000AA05E8329BFD06"


@pytest.fixture(params=["tcp", "pty"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[FakeModem, AtChannel]]:
    modem = FakeModem()
    url = await modem.start_tcp() if request.param == "tcp" else modem.start_pty()
    channel = await AtChannel.open(url, name="t", extra_finals=("+CMS ERROR",))
    yield modem, channel
    await channel.close()
    await modem.close()


async def test_ok_with_echo_and_info_lines(pair: tuple[FakeModem, AtChannel]) -> None:
    modem, channel = pair
    modem.reply = lambda c: f"{c}\r\r\nSIMCOM_Ltd\r\n\r\nOK\r\n".encode()
    response = await channel.command("AT+CGMI")
    assert response.lines == ("SIMCOM_Ltd",)
    assert response.final == "OK"


async def test_bare_cr_line_ends(pair: tuple[FakeModem, AtChannel]) -> None:
    modem, channel = pair
    modem.reply = lambda c: b"\r+CSQ: 17,99\r\rOK\r"
    response = await channel.command("AT+CSQ")
    assert response.first("+CSQ:") == "17,99"


async def test_typed_errors(pair: tuple[FakeModem, AtChannel]) -> None:
    modem, channel = pair
    modem.reply = lambda c: b"\r\n+CME ERROR: 10\r\n"
    with pytest.raises(CmeError) as cme:
        await channel.command("AT+CPIN?")
    assert cme.value.code == 10
    assert cme.value.meaning == "SIM not inserted"
    modem.reply = lambda c: b"\r\n+CMS ERROR: Network out of order\r\n"
    with pytest.raises(CmsError) as cms:
        await channel.command("AT+CMGD=1")
    assert cms.value.code == 38
    modem.reply = lambda c: b"\r\nCOMMAND NOT SUPPORT\r\n"
    with pytest.raises(AtError) as err:
        await channel.command("AT^FOO")
    assert err.value.final == "COMMAND NOT SUPPORT"


async def test_urc_inside_response_goes_to_subscriber(pair: tuple[FakeModem, AtChannel]) -> None:
    modem, channel = pair
    seen: list[Urc] = []
    channel.subscribe("+CMTI:", seen.append)
    modem.reply = lambda c: b'\r\n+CREG: 0,1\r\n+CMTI: "SM",3\r\nOK\r\n'
    response = await channel.command("AT+CREG?")
    assert response.lines == ("+CREG: 0,1",)
    assert [u.args for u in seen] == ['"SM",3']


async def test_cmgr_pdu_belongs_to_response_but_idle_cmt_is_a_urc(
    pair: tuple[FakeModem, AtChannel],
) -> None:
    modem, channel = pair
    urcs: list[Urc] = []
    got = asyncio.Event()

    def on_urc(urc: Urc) -> None:
        urcs.append(urc)
        got.set()

    channel.subscribe("+CMT:", on_urc)
    modem.reply = lambda c: f"\r\n+CMGR: 0,,20\r\n{PDU}\r\n\r\nOK\r\n".encode()
    response = await channel.command("AT+CMGR=1")
    assert response.lines == ("+CMGR: 0,,20", PDU)
    assert urcs == []
    modem.inject(f"\r\n+CMT: ,20\r\n{PDU}\r\n".encode())
    async with asyncio.timeout(2):
        await got.wait()
    assert urcs == [Urc("+CMT", "+CMT: ,20", PDU)]


async def test_two_line_urc_interleaved_in_a_command(pair: tuple[FakeModem, AtChannel]) -> None:
    modem, channel = pair
    urcs: list[Urc] = []
    channel.subscribe("+CDS:", urcs.append)
    modem.reply = lambda c: f"\r\n+CDS: 25\r\n{PDU}\r\n+CSQ: 20,0\r\nOK\r\n".encode()
    response = await channel.command("AT+CSQ")
    assert response.lines == ("+CSQ: 20,0",)
    assert urcs == [Urc("+CDS", "+CDS: 25", PDU)]


async def test_submit_writes_pdu_at_prompt_with_echo(pair: tuple[FakeModem, AtChannel]) -> None:
    modem, channel = pair

    def reply(c: str) -> bytes:
        if c.startswith("AT+CMGS"):
            return f"{c}\r\r\n> ".encode()
        return f"{c}\r\n+CMGS: 42\r\n\r\nOK\r\n".encode()  # echo of the PDU, then the result

    modem.reply = reply
    response = await channel.submit("AT+CMGS=19", PDU)
    assert response.first("+CMGS:") == "42"
    assert modem.received == ["AT+CMGS=19", PDU + "<CTRL-Z>"]


async def test_before_submit_false_sends_esc(pair: tuple[FakeModem, AtChannel]) -> None:
    modem, channel = pair
    modem.reply = lambda c: b"\r\n> " if c.startswith("AT+CMGS") else b"\r\nOK\r\n"
    with pytest.raises(PromptAborted):
        await channel.submit("AT+CMGS=19", PDU, before_submit=lambda: False)
    assert modem.received == ["AT+CMGS=19", "<ESC>"]
    assert (await channel.command("AT")).final == "OK"


async def test_error_instead_of_prompt(pair: tuple[FakeModem, AtChannel]) -> None:
    modem, channel = pair
    modem.reply = lambda c: b"\r\n+CMS ERROR: 304\r\n"
    with pytest.raises(CmsError) as err:
        await channel.submit("AT+CMGS=999", PDU)
    assert err.value.code == 304


async def test_timeout_resyncs_and_channel_stays_usable(
    pair: tuple[FakeModem, AtChannel],
) -> None:
    modem, channel = pair
    late: list[bytes] = []

    def reply(c: str) -> bytes | None:
        if c == "AT+COPS?":
            late.append(b'\r\n+COPS: 0,0,"late"\r\n\r\nOK\r\n')
            return None
        if c == "AT+CSQ":  # the resync probe; the late answer of AT+COPS? arrives first
            return late.pop() + b"\r\n+CSQ: 20,0\r\n\r\nOK\r\n" if late else None
        return f"\r\n{c[2:]}\r\nOK\r\n".encode()

    modem.reply = reply
    with pytest.raises(AtTimeout) as err:
        await channel.command("AT+COPS?", limit=0.2)
    assert not err.value.written
    assert modem.received[-1] == "AT+CSQ"
    response = await channel.command("AT+CMGF=0")
    assert response.lines == ("+CMGF=0",)  # its own answer, not the late one


async def test_silence_after_ctrl_z_is_written_timeout(pair: tuple[FakeModem, AtChannel]) -> None:
    modem, channel = pair
    modem.reply = lambda c: b"\r\n> " if c.startswith("AT+CMGS") else None
    channel.resync_limit = 0.05
    with pytest.raises(AtTimeout) as err:
        await channel.submit("AT+CMGS=19", PDU, limit=0.2)
    assert err.value.written
    assert "<ESC>" not in modem.received  # Esc only at the prompt, never after Ctrl-Z


async def test_commands_queue_fifo(pair: tuple[FakeModem, AtChannel]) -> None:
    modem, channel = pair
    modem.reply = lambda c: f"\r\n{c[2:]}\r\nOK\r\n".encode()
    results = await asyncio.gather(*(channel.command(f"AT{i}") for i in range(20)))
    assert [r.lines for r in results] == [(str(i),) for i in range(20)]
    assert modem.received == [f"AT{i}" for i in range(20)]


async def test_port_gone_fails_pending_and_later_commands() -> None:
    modem = FakeModem(lambda c: None)
    url = await modem.start_tcp()
    channel = await AtChannel.open(url)
    lost: list[str] = []
    channel.on_lost(lost.append)
    task = asyncio.create_task(channel.command("AT+CSQ", limit=5))
    async with asyncio.timeout(2):
        await modem.got_line.wait()
    await modem.drop_client()
    with pytest.raises(PortGone):
        await task
    with pytest.raises(PortGone):
        await channel.command("AT")
    assert lost
    await modem.close()


async def test_open_missing_device_is_port_gone() -> None:
    with pytest.raises(PortGone):
        await AtChannel.open("/dev/does-not-exist-gatewayd")


async def test_interrupted_command_resyncs_before_the_next(
    pair: tuple[FakeModem, AtChannel],
) -> None:
    modem, channel = pair
    held: list[bytes] = []

    def reply(c: str) -> bytes | None:
        if c == "AT+CMGL=4":
            held.append(b"\r\n+CMGL: 1,0,,5\r\n00AA\r\n\r\nOK\r\n")
            return None
        if c == "AT+CSQ":
            return held.pop() + b"\r\n+CSQ: 9,0\r\nOK\r\n"
        return b"\r\n+CPIN: READY\r\nOK\r\n"

    modem.reply = reply
    task = asyncio.create_task(channel.command("AT+CMGL=4"))
    async with asyncio.timeout(2):
        while not held:
            modem.got_line.clear()
            await modem.got_line.wait()
    assert channel.interrupt("rebooted")
    with pytest.raises(AtError, match="interrupted"):
        await task
    response = await channel.command("AT+CPIN?")
    assert response.lines == ("+CPIN: READY",)
    assert modem.received == ["AT+CMGL=4", "AT+CSQ", "AT+CPIN?"]


async def test_garbage_never_raises(pair: tuple[FakeModem, AtChannel]) -> None:
    modem, channel = pair
    modem.inject(b"\x00\xff\xfe\r\n\x80abc\x00\r+CMT: ,5\r\nnot hex\r\n")
    modem.reply = lambda c: b"\xff\x00\r\nOK\r\n"
    assert (await channel.command("AT")).final == "OK"
