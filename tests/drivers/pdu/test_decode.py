"""Decoding SMS-DELIVER details and broken PDUs from real modems."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from drivers.pdu import Concat, Deliver, Encoding, PduError, UdhElement, decode, encode_deliver

SCTS = datetime(2026, 11, 23, 21, 5, 0, tzinfo=timezone(timedelta(hours=1)))


def _deliver(data: str | bytes, **kwargs: bool) -> Deliver:
    msg = decode(data, **kwargs)
    assert isinstance(msg, Deliver)
    return msg


def _frame(dcs: int, ud: str, *, first: int = 0x04) -> str:
    """An SMS-DELIVER from +34600111222 with the given DCS and UDL+UD hex (no SMSC)."""
    return f"00{first:02X}0B914306101122F200{dcs:02X}62113212500040" + ud


def test_alphanumeric_sender() -> None:
    # smspdudecoder docs: address 0BD0CDE6DB5DCE03 is the alphanumeric sender "MMoney".
    msg = _deliver(_frame(0, "00").replace("0B914306101122F2", "0BD0CDE6DB5DCE03"))
    assert msg.sender == "MMoney"


def test_alphanumeric_sender_round_trip_with_extension_char() -> None:
    (pdu,) = encode_deliver("Shop{24}", "hi", scts=SCTS)
    assert _deliver(pdu).sender == "Shop{24}"


def test_smsc_present_or_absent() -> None:
    (with_smsc,) = encode_deliver("+34600111222", "hola", scts=SCTS, smsc="+34609090909")
    assert _deliver(with_smsc).smsc == "+34609090909"
    (without,) = encode_deliver("+34600111222", "hola", scts=SCTS)
    assert without[0] == 0
    assert _deliver(without[1:], has_smsc=False).text == "hola"
    assert _deliver(without).smsc is None


def test_hex_input_is_case_and_whitespace_tolerant() -> None:
    (pdu,) = encode_deliver("+34600111222", "hola", scts=SCTS)
    spaced = " ".join(pdu.hex()[i : i + 2] for i in range(0, len(pdu.hex()), 2))
    assert _deliver(spaced.lower() + "\r\n").text == "hola"


def test_eight_bit_data_with_application_ports() -> None:
    # WAP push style header: 16-bit ports 2948 <- 9200 (UDH 0605040B8423F0), 8-bit DCS 04.
    msg = _deliver(_frame(0x04, "0A0605040B8423F0010203", first=0x44))
    assert msg.encoding is Encoding.BIT8
    assert msg.ports == (2948, 9200)
    assert msg.data == b"\x01\x02\x03"
    assert msg.udh == (UdhElement(0x05, bytes.fromhex("0B8423F0")),)


def test_message_class_from_dcs() -> None:
    assert _deliver(_frame(0x10, "0141")).message_class == 0  # flash
    assert _deliver(_frame(0xF1, "0141")).message_class == 1
    assert _deliver(_frame(0x00, "0141")).message_class is None


def test_concat_16_bit_and_unknown_elements_kept() -> None:
    # UDH: IEI 08 (16-bit reference 0x1234, part 2 of 3) and IEI 70 (unknown), then "Hi".
    ud = "0E" + "09" + "080412340302" + "700199" + "00480069"
    msg = _deliver(_frame(0x08, ud, first=0x44))
    assert msg.concat == Concat(0x1234, 3, 2)
    assert msg.udh == (
        UdhElement(0x08, bytes.fromhex("12340302")),
        UdhElement(0x70, b"\x99"),
    )
    assert msg.text == "Hi"


def test_concat_with_part_zero_is_ignored() -> None:
    msg = _deliver(_frame(0x08, "08050003070200" + "0041", first=0x44))
    assert msg.concat is None
    assert msg.text == "A"


def test_spanish_single_shift_udh_is_decoded() -> None:
    # UDH 03 24 01 02 (single shift, Spanish), 4 octets = 32 bits -> 5 septets, 3 fill bits;
    # then "env" ESC 0x69 "o" = "envío".
    from drivers.pdu.gsm7 import pack

    text = pack([0x65, 0x6E, 0x76, 0x1B, 0x69, 0x6F], fill_bits=3).hex()
    msg = _deliver(_frame(0x00, f"{5 + 6:02X}03240102" + text, first=0x44))
    assert msg.text == "envío"


def test_negative_quarter_hours() -> None:
    # -03:30 (Newfoundland): 14 quarters -> semi-octets "41" with the sign bit: 0x49.
    msg = _deliver(_frame(0, "0141").replace("62113212500040", "62113212500049"))
    assert msg.scts.utcoffset() == -timedelta(hours=3, minutes=30)


def test_sim_ff_padding_after_the_user_data_is_ignored() -> None:
    (pdu,) = encode_deliver("+34600111222", "hola", scts=SCTS)
    assert _deliver(pdu + b"\xff" * 40).text == "hola"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("", "empty"),
        ("0", "hexadecimal"),
        ("zz", "hexadecimal"),
        ("00", "no TPDU"),
        ("0004", "sender"),
        ("00040B914306101122", "sender"),
        ("00040B914306101122F20000", "scts"),
        ("00040B914306101122F2000062113212", "scts"),
        ("00040B914306101122F20000621132125000400541", "udl"),  # UDL 5 septets, 1 octet
        ("00040B914306101122F2000062113212500040014142", "follow"),  # 1 septet + stray octet
        ("00040B914306101122F20000621132125000400541FFFF", "udl"),  # FF is not user data
        ("00040B914306101122F2000062113212500040A141", "160"),
        ("00040B914306101122F20000F2113212500040", "scts"),  # month 2F
        ("00040B914306101122F20000621132125000400A", "udl"),
        ("00070B914306101122F200", "mti"),
        ("0F91", "smsc"),
        ("099123", "smsc"),
        ("00440B914306101122F2000062113212500040" + "03060000", "udh"),
        ("00040B914306101122F200006211321250004042", "udl"),
        ("00042A914306101122F200", "sender"),
    ],
)
def test_broken_pdus_raise_pdu_error_with_a_reason(data: str, reason: str) -> None:
    with pytest.raises(PduError, match=reason):
        decode(data)
