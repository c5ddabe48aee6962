"""USSD: the decoder for every shape seen in the field, and Modem.ussd on every simulator
personality (text, UCS-2 hex, Huawei packed hex), the balance falling with each SMS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.clock import SystemClock
from drivers.modem import Modem
from drivers.modem.ussd import UssdError, decode_text, encode_packed, parse_cusd
from drivers.pdu.gsm7 import DEFAULT_ALPHABET
from drivers.sim import SimNetwork

GSM_LETTERS = st.text(
    alphabet=[c for c in DEFAULT_ALPHABET if c.isalpha() or c in " .,:"], min_size=5, max_size=80
).filter(lambda t: sum(c.isalpha() for c in t) >= len(t) // 3 + 1 and t.strip() == t)


@given(GSM_LETTERS)
def test_huawei_packed_hex_round_trips(text: str) -> None:
    assert parse_cusd(f'0,"{encode_packed(text)}",15').text == text


@given(st.text(min_size=1, max_size=60).filter(lambda t: '"' not in t))
def test_ucs2_hex_round_trips(text: str) -> None:
    raw = text.encode("utf-16-be").hex().upper()
    assert decode_text(raw, 72) == text.encode("utf-16-be").decode("utf-16-be")


@given(st.text(max_size=200))
def test_garbage_never_crashes(args: str) -> None:
    try:
        answer = parse_cusd(args)
    except UssdError as exc:
        error = exc
    else:
        assert isinstance(answer.text, str)
        return
    assert error.field == "+CUSD"


def test_plain_text_and_status_only() -> None:
    answer = parse_cusd('0,"Su saldo es 4.90 EUR",15')
    assert (answer.status, answer.text, answer.dcs) == (0, "Su saldo es 4.90 EUR", 15)
    assert parse_cusd("4").status == 4
    assert parse_cusd('0,"CAFE",15').text == "CAFE"  # hex-looking text stays text


@pytest.fixture
async def net() -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=SystemClock(), seed=2)
    yield network
    await network.close()


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ("simcom", "Su saldo es 4.80 EUR"),
        ("quectel", "Saldo: 4.80 €"),
        ("huawei", "Su saldo es 4.80 EUR"),
    ],
)
async def test_modem_ussd_on_each_personality(net: SimNetwork, profile: str, expected: str) -> None:
    sim = await net.add_modem(profile, latency=(0, 0))
    modem = Modem(sim.url, name="m", clock=SystemClock())
    await modem.start()
    try:
        await modem.wait_ready(5)
        await modem.send_text("+34611000001", "uno")
        await modem.send_text("+34611000001", "dos")
        assert await modem.ussd("*111#", limit=5) == expected
        with pytest.raises(UssdError):
            await modem.ussd("*111#; AT+CFUN=0", limit=5)
    finally:
        await modem.stop()
