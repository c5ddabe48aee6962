"""SMS-SUBMIT encoding details: header bits, addresses, VP, DCS, concatenation."""

from __future__ import annotations

import pytest

from drivers.pdu import Concat, Encoding, PduError, Submit, SubmitPart, UdhElement, decode
from drivers.pdu import encode_submit as encode
from drivers.pdu.timestamps import vp_minutes_to_octet, vp_octet_to_minutes


def _one(part: SubmitPart) -> Submit:
    msg = decode(part.tpdu, has_smsc=False)
    assert isinstance(msg, Submit)
    return msg


def test_defaults_srr_vp_24h_mr_zero_gsm7() -> None:
    (part,) = encode("+34600111222", "Hola")
    assert part.tpdu[0] == 0x31  # SMS-SUBMIT, VPF relative, SRR
    assert part.tpdu[1] == 0x00  # TP-MR left to the modem
    assert part.hex().startswith("0031")
    assert part.hex(with_smsc=False).startswith("31")
    assert part.hex() == part.hex().upper()
    assert part.length == len(part.tpdu)
    msg = _one(part)
    assert (msg.srr, msg.vp_minutes, msg.mr, msg.dcs, msg.pid) == (True, 1440, 0, 0x00, 0)
    assert msg.recipient == "+34600111222"


def test_national_number_no_srr_no_vp() -> None:
    (part,) = encode("600111222", "Hola", srr=False, vp_minutes=None)
    assert part.tpdu[0] == 0x01
    assert part.tpdu[2:4] == bytes((9, 0x81))
    msg = _one(part)
    assert (msg.recipient, msg.srr, msg.vp_minutes) == ("600111222", False, None)


def test_flash_sets_class_0() -> None:
    msg = _one(encode("+34600111222", "Alerta", flash=True)[0])
    assert msg.dcs == 0x10
    assert msg.message_class == 0
    ucs = _one(encode("+34600111222", "Alerta", flash=True, force_ucs2=True)[0])
    assert (ucs.dcs, ucs.encoding, ucs.message_class) == (0x18, Encoding.UCS2, 0)


def test_concatenation_with_8_bit_reference() -> None:
    parts = encode("+34600111222", "x" * 200, concat_ref=0xAB)
    msgs = [_one(p) for p in parts]
    assert [m.concat for m in msgs] == [Concat(0xAB, 2, 1), Concat(0xAB, 2, 2)]
    assert msgs[0].udh == (UdhElement(0x00, bytes((0xAB, 2, 1))),)
    assert all(p.tpdu[0] & 0x40 for p in parts)  # UDHI
    assert [len(m.text) for m in msgs] == [153, 47]


def test_concatenation_with_16_bit_reference() -> None:
    parts = encode("+34600111222", "x" * 200, concat_ref=0xBEEF, ref16=True)
    msgs = [_one(p) for p in parts]
    assert [m.concat for m in msgs] == [Concat(0xBEEF, 2, 1), Concat(0xBEEF, 2, 2)]
    assert [len(m.text) for m in msgs] == [152, 48]


def test_random_reference_is_shared_by_all_parts() -> None:
    msgs = [_one(p) for p in encode("+34600111222", "y" * 400)]
    refs = {m.concat.ref for m in msgs if m.concat is not None}
    assert len(refs) == 1
    assert len(msgs) == 3


@pytest.mark.parametrize(
    ("minutes", "octet", "effective"),
    [
        (1, 0, 5),
        (5, 0, 5),
        (6, 1, 10),
        (720, 143, 720),
        (721, 144, 750),
        (1440, 167, 1440),
        (1441, 168, 2 * 1440),
        (4 * 1440, 170, 4 * 1440),
        (30 * 1440, 196, 30 * 1440),
        (31 * 1440, 197, 5 * 7 * 1440),
        (10**9, 255, 63 * 7 * 1440),
    ],
)
def test_relative_validity_rounds_up(minutes: int, octet: int, effective: int) -> None:
    assert vp_minutes_to_octet(minutes) == octet
    assert vp_octet_to_minutes(octet) == effective


@pytest.mark.parametrize(
    ("to", "reason"),
    [
        ("", "not a phone number"),
        ("+", "not a phone number"),
        ("Amazon", "not a phone number"),
        ("+34 600", "not a phone number"),
        ("1" * 21, "more than 20 digits"),
    ],
)
def test_bad_recipient(to: str, reason: str) -> None:
    with pytest.raises(PduError, match=reason):
        encode(to, "x")


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="validity"):
        encode("+34600111222", "x", vp_minutes=0)
    with pytest.raises(ValueError, match="concat_ref"):
        encode("+34600111222", "x" * 200, concat_ref=256)
    with pytest.raises(PduError, match="255"):
        encode("+34600111222", "x" * 153 * 256)
    with pytest.raises(PduError, match="cannot be encoded"):
        encode("+34600111222", "lone \ud800 surrogate")
