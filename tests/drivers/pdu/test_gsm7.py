"""GSM 03.38 alphabet, extension and Spanish single-shift tables, septet packing."""

from __future__ import annotations

import pytest

from drivers.pdu import PduError
from drivers.pdu.gsm7 import (
    DEFAULT_ALPHABET,
    SPANISH_SINGLE_SHIFT,
    decode_septets,
    encode_text,
    is_gsm7,
    pack,
    septet_count,
    unpack,
)


def test_hellohello_packs_as_in_the_tutorials() -> None:
    # Lars Pettersson's PDU tutorial: "hellohello" -> E8329BFD4697D9EC37.
    assert pack(encode_text("hellohello")).hex().upper() == "E8329BFD4697D9EC37"


def test_extension_characters_cost_two_septets() -> None:
    ext = "^{}\\[~]|€\f"
    assert is_gsm7(ext)
    assert septet_count(ext) == 20
    septets = encode_text(ext)
    assert septets[::2] == [0x1B] * 10
    assert decode_septets(septets) == ext


def test_euro_example_from_smspdudecoder_docs() -> None:
    # smspdudecoder GSM codec doctest: "2 € par mois" -> 32D0A60C8287E5A0F63B3D07.
    data = bytes.fromhex("32D0A60C8287E5A0F63B3D07")
    assert decode_septets(unpack(data, 13)) == "2 € par mois"


def test_alphabet_has_128_codes_with_the_classic_specials() -> None:
    assert len(DEFAULT_ALPHABET) == 128
    assert DEFAULT_ALPHABET[0x00] == "@"
    assert DEFAULT_ALPHABET[0x02] == "$"
    assert DEFAULT_ALPHABET[0x11] == "_"
    assert DEFAULT_ALPHABET[0x24] == "¤"
    assert DEFAULT_ALPHABET[0x40] == "¡"
    assert DEFAULT_ALPHABET[0x7F] == "à"


def test_characters_outside_gsm_are_reported() -> None:
    assert not is_gsm7("envío")
    with pytest.raises(PduError, match="'í'"):
        encode_text("envío")


def test_unknown_escape_shows_the_default_character_and_esc_esc_a_space() -> None:
    # TS 23.038 6.2.1.1: unknown escaped code -> default table character; 1B1B -> space.
    assert decode_septets([0x1B, 0x41, 0x1B, 0x1B, 0x42]) == "A B"


def test_dangling_escape_is_dropped() -> None:
    assert decode_septets([0x41, 0x1B]) == "A"


def test_spanish_single_shift_decodes_accents() -> None:
    septets = [0x65, 0x6E, 0x76, 0x1B, 0x69, 0x6F, 0x20, 0x1B, 0x41, 0x1B, 0x65]
    assert decode_septets(septets, SPANISH_SINGLE_SHIFT) == "envío Á€"
    # Without the table the same septets fall back to the default alphabet.
    assert decode_septets(septets) == "envio A€"


@pytest.mark.parametrize("fill", range(7))
def test_pack_unpack_round_trip_with_fill_bits(fill: int) -> None:
    septets = encode_text("The quick brown fox €")
    assert unpack(pack(septets, fill), len(septets), fill) == septets


def test_unpack_refuses_short_data() -> None:
    with pytest.raises(PduError, match="too short"):
        unpack(b"\x00", 2)
