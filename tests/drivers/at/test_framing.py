"""The framer: lines, the prompt, garbage; hypothesis over arbitrary byte streams."""

from __future__ import annotations

import asyncio
import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.at import AtChannel, AtError, Framer, Line, Prompt
from drivers.at.framing import MAX_LINE


def test_crlf_bare_cr_and_blank_lines() -> None:
    framer = Framer()
    frames = framer.feed(b"\r\nOK\r\n\r\n+CSQ: 1,2\rRING\n")
    assert frames == [Line("OK"), Line("+CSQ: 1,2"), Line("RING")]


def test_prompt_without_line_end_even_split() -> None:
    framer = Framer()
    assert framer.feed(b"AT+CMGS=5\r\r\n>") == [Line("AT+CMGS=5"), Prompt()]
    assert framer.feed(b" ") == []
    assert framer.feed(b"\r\n+CMGS: 3\r\n") == [Line("+CMGS: 3")]


def test_partial_line_waits_for_its_end() -> None:
    framer = Framer()
    assert framer.feed(b'+CMTI: "S') == []
    assert framer.feed(b'M",1\r\n') == [Line('+CMTI: "SM",1')]


def test_echoed_pdu_ends_at_ctrl_z() -> None:
    assert Framer().feed(b"> 0011AA\x1a\r\n") == [Prompt(), Line("0011AA")]


def test_nul_and_non_utf8_do_not_raise() -> None:
    frames = Framer().feed(b"\x00O\x00K\r\n\xff\xfeab\r\n\xff\x01\r\n+CSQ: 1,2\xff\r\n")
    assert frames == [Line("OK"), Line("ab"), Line("+CSQ: 1,2")]


def test_overlong_run_without_line_end_is_dropped() -> None:
    framer = Framer()
    assert framer.feed(b"x" * (MAX_LINE + 1)) == []
    assert framer.dropped == MAX_LINE + 1
    assert framer.feed(b"\r\nOK\r\n") == [Line("OK")]


@given(st.binary(max_size=600))
def test_framer_never_raises(data: bytes) -> None:
    frames = Framer().feed(data)
    assert all(isinstance(f, Line | Prompt) for f in frames)


class _LoopbackTransport(asyncio.Transport):
    """Feeds the channel an arbitrary stream, then answers each command with OK."""

    def __init__(self, channel: AtChannel) -> None:
        super().__init__()
        self.channel = channel

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if bytes(data) == b"AT+CSQ\r":  # the channel's resync probe
            answer = b"\r\n+CSQ: 9,0\r\nOK\r\n"
            asyncio.get_running_loop().call_soon(self.channel.data_received, answer)
        elif bytes(data).endswith(b"\r"):
            asyncio.get_running_loop().call_soon(self.channel.data_received, b"\r\nOK\r\n")

    def close(self) -> None:
        self.channel.connection_lost(None)

    def abort(self) -> None:
        self.channel.connection_lost(None)


async def _garbage_then_command(chunks: list[bytes]) -> str:
    channel = AtChannel(name="fuzz")
    channel.resync_limit = 0.05
    channel.attach(_LoopbackTransport(channel))
    for chunk in chunks:
        channel.data_received(chunk)
    # A partial garbage line ("ERROR" without its line end) may end the first command with a
    # typed error; the channel must never raise anything else and must answer the next one.
    with contextlib.suppress(AtError):
        await channel.command("AT", limit=1.0)
    response = await channel.command("AT", limit=1.0)
    await channel.close()
    return response.final


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_garbage_never_wedges_the_channel(chunks: list[bytes]) -> None:
    assert asyncio.run(_garbage_then_command(chunks)) == "OK"


_TOKENS = st.sampled_from(
    [
        b"\r",
        b"\n",
        b"\r\n",
        b"OK",
        b"ERROR",
        b"+CMT: ,23",
        b"+CDS: 25",
        b"> ",
        b">",
        b"\x1a",
        b"\x1b",
        b"00FF",
        b'+CMTI: "SM",1',
        b"RING",
        b"\x00",
        b"\xff",
        b"+CME ERROR: 14",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_TOKENS, max_size=40))
def test_modem_shaped_garbage_never_wedges_the_channel(tokens: list[bytes]) -> None:
    assert asyncio.run(_garbage_then_command([b"".join(tokens)])) == "OK"
