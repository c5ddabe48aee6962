"""Alphabet choice, part counts at the limits, smart replacements."""

from __future__ import annotations

import pytest

from drivers.pdu import (
    Encoding,
    SegmentInfo,
    Submit,
    UdhElement,
    decode,
    encode_submit,
    segments,
)


@pytest.mark.parametrize(
    ("text", "encoding", "parts", "units"),
    [
        ("", Encoding.GSM7, 1, 0),
        ("a" * 160, Encoding.GSM7, 1, 160),
        ("a" * 161, Encoding.GSM7, 2, 161),
        ("a" * 306, Encoding.GSM7, 2, 306),
        ("a" * 307, Encoding.GSM7, 3, 307),
        ("€" * 80, Encoding.GSM7, 1, 160),
        ("€" * 81, Encoding.GSM7, 2, 162),
        ("€" * 153, Encoding.GSM7, 3, 306),  # 76 euros (152 septets) a part, never 153
        ("ó" * 70, Encoding.UCS2, 1, 70),
        ("ó" * 71, Encoding.UCS2, 2, 71),
        ("ó" * 134, Encoding.UCS2, 2, 134),
        ("ó" * 135, Encoding.UCS2, 3, 135),
        ("😀" * 35, Encoding.UCS2, 1, 70),
        ("😀" * 36, Encoding.UCS2, 2, 72),
        ("😀" * 67, Encoding.UCS2, 3, 134),  # 33 pairs (66 units) a part, never 67
    ],
    ids=lambda v: f"{v[:1]!r}x{len(v)}" if isinstance(v, str) else str(v),
)
def test_limits(text: str, encoding: Encoding, parts: int, units: int) -> None:
    assert segments(text) == SegmentInfo(encoding, parts, units, ())
    assert len(encode_submit("+34600111222", text, concat_ref=1)) == parts


def test_spanish_accent_costs_ucs2() -> None:
    info = segments("Tu envío está en camino")
    assert info.encoding is Encoding.UCS2
    assert info.units == 23


def test_force_ucs2() -> None:
    assert segments("hola", force_ucs2=True) == SegmentInfo(Encoding.UCS2, 1, 4, ())


def test_smart_mode_replaces_lookalikes_and_folds_accents() -> None:
    info = segments("“Envío” listo… ‘ok’ – gracias", smart=True)
    assert info.encoding is Encoding.GSM7
    assert dict(info.replaced_chars) == {
        "“": '"',
        "í": "i",
        "”": '"',
        "…": "...",
        "‘": "'",
        "’": "'",
        "–": "-",
    }
    (part,) = encode_submit("+34600111222", "“Envío” listo… ‘ok’ – gracias", smart=True)
    msg = decode(part.hex())
    assert isinstance(msg, Submit)
    assert msg.text == "\"Envio\" listo... 'ok' - gracias"


def test_smart_mode_keeps_gsm_accents() -> None:
    # é, ñ, ü, à exist in GSM 7-bit: nothing to replace.
    assert segments("éñüà", smart=True) == SegmentInfo(Encoding.GSM7, 1, 4, ())


def test_smart_mode_falls_back_to_ucs2_untouched_when_something_cannot_fold() -> None:
    info = segments("envío 😀", smart=True)
    assert info == SegmentInfo(Encoding.UCS2, 1, 8, ())


def test_smart_mode_is_off_by_default() -> None:
    assert segments("“x”").encoding is Encoding.UCS2


def test_escape_is_never_split_across_parts() -> None:
    text = "a" * 152 + "€" + "b" * 10
    parts = encode_submit("+34600111222", text, concat_ref=5)
    decoded = [decode(p.hex()) for p in parts]
    assert [m.text for m in decoded if isinstance(m, Submit)] == ["a" * 152, "€" + "b" * 10]


@pytest.mark.parametrize(
    ("text", "parts", "units"),
    [
        ("á" * 77 + "a", 1, 155),  # 4-octet UDH (single shift) + 3 fill bits = 5 septets
        ("á" * 77 + "ab", 2, 156),
        ("ó" * 74 + "a" * 150, 2, 298),  # 149 septets a part with concatenation + shift
        ("ó" * 74 + "a" * 151, 3, 299),
    ],
    ids=["single-155", "two-156", "two-298", "three-299"],
)
def test_spanish_shift_limits(text: str, parts: int, units: int) -> None:
    assert segments(text, spanish_shift=True) == SegmentInfo(Encoding.GSM7, parts, units, ())
    encoded = encode_submit("+34600111222", text, spanish_shift=True, concat_ref=9)
    assert len(encoded) == parts
    decoded = [decode(p.hex()) for p in encoded]
    assert "".join(m.text for m in decoded if isinstance(m, Submit)) == text
    assert all(UdhElement(0x24, b"\x02") in m.udh for m in decoded if isinstance(m, Submit))


def test_spanish_shift_only_when_needed_and_possible() -> None:
    plain = encode_submit("+34600111222", "hola", spanish_shift=True)
    assert not plain[0].tpdu[0] & 0x40  # no UDH for text the default alphabet covers
    assert segments("envío 😀", spanish_shift=True).encoding is Encoding.UCS2
    # Accents outside the Spanish table (â) still fall back to UCS-2.
    assert segments("está â", spanish_shift=True).encoding is Encoding.UCS2
