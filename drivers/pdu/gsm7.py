"""GSM 03.38 (3GPP TS 23.038) default alphabet, shift tables and septet packing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from drivers.pdu.errors import PduError

ESCAPE = 0x1B

# TS 23.038 6.2.1: the default alphabet, code point = index.  0x1B is the escape to the
# extension table; it never decodes to a character of its own.
DEFAULT_ALPHABET = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)

# TS 23.038 6.2.1.1: the default extension table, reached with ESC.
DEFAULT_EXTENSION: Mapping[int, str] = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

# TS 23.038 A.2.2: Spanish national language single shift table (language 2), selected by
# UDH IEI 0x24.  It is the default extension table plus the Spanish accented letters.
SPANISH_SINGLE_SHIFT: Mapping[int, str] = {
    **DEFAULT_EXTENSION,
    0x09: "ç",
    0x41: "Á",
    0x49: "Í",
    0x4F: "Ó",
    0x55: "Ú",
    0x61: "á",
    0x69: "í",
    0x6F: "ó",
    0x75: "ú",
}

SPANISH = 2
SINGLE_SHIFT_TABLES: Mapping[int, Mapping[int, str]] = {SPANISH: SPANISH_SINGLE_SHIFT}

_DEFAULT_CODES: dict[str, int] = {
    ch: code for code, ch in enumerate(DEFAULT_ALPHABET) if code != ESCAPE
}
_EXTENSION_CODES: dict[str, int] = {ch: code for code, ch in DEFAULT_EXTENSION.items()}
_SEPTETS: dict[str, tuple[int, ...]] = {
    **{ch: (code,) for ch, code in _DEFAULT_CODES.items()},
    **{ch: (ESCAPE, code) for ch, code in _EXTENSION_CODES.items()},
}
# Encoding with a national single shift table: ESC reaches that table instead.
_SHIFTED_SEPTETS: dict[int, dict[str, tuple[int, ...]]] = {
    language: {
        **{ch: (code,) for ch, code in _DEFAULT_CODES.items()},
        **{ch: (ESCAPE, code) for code, ch in table.items() if ch not in _DEFAULT_CODES},
    }
    for language, table in SINGLE_SHIFT_TABLES.items()
}


def _table(language: int | None) -> dict[str, tuple[int, ...]]:
    return _SEPTETS if language is None else _SHIFTED_SEPTETS[language]


def char_septets(ch: str) -> tuple[int, ...] | None:
    """The septets that encode ``ch`` (one, or ESC + one), or None if GSM 7-bit lacks it."""
    return _SEPTETS.get(ch)


def is_gsm7(text: str, language: int | None = None) -> bool:
    """True when every character of ``text`` exists in the default alphabet or the shift
    table (the default extension, or ``language``'s national single shift table)."""
    table = _table(language)
    return all(ch in table for ch in text)


def septet_count(text: str, language: int | None = None) -> int:
    """Septets ``text`` needs (escaped characters cost two); text must be encodable."""
    table = _table(language)
    return sum(len(table[ch]) for ch in text)


def encode_text(text: str, language: int | None = None) -> list[int]:
    """Septets for ``text``; raises PduError naming the first character GSM 7-bit lacks."""
    table = _table(language)
    try:
        return [code for ch in text for code in table[ch]]
    except KeyError as exc:
        raise PduError(f"character {exc.args[0]!r} is not in the GSM 7-bit alphabet") from None


def decode_septets(septets: Iterable[int], single_shift: Mapping[int, str] | None = None) -> str:
    """Text for ``septets``, resolving ESC through ``single_shift`` (default extension table).

    Per TS 23.038 6.2.1.1 an escaped code missing from the table shows the default-alphabet
    character, and ESC ESC (reserved for a further table) shows a space.  A dangling ESC at
    the very end carries no character and is dropped.
    """
    table = DEFAULT_EXTENSION if single_shift is None else single_shift
    out: list[str] = []
    escaped = False
    for code in septets:
        if escaped:
            escaped = False
            if code == ESCAPE:
                out.append(" ")
            else:
                out.append(table.get(code, DEFAULT_ALPHABET[code]))
        elif code == ESCAPE:
            escaped = True
        else:
            out.append(DEFAULT_ALPHABET[code])
    return "".join(out)


def pack(septets: Iterable[int], fill_bits: int = 0) -> bytes:
    """Pack septets LSB-first into octets, after ``fill_bits`` zero bits (UDH alignment)."""
    value = 0
    shift = fill_bits
    for septet in septets:
        value |= (septet & 0x7F) << shift
        shift += 7
    return value.to_bytes((shift + 7) // 8, "little")


def unpack(data: bytes, count: int, fill_bits: int = 0) -> list[int]:
    """Read ``count`` septets from ``data`` after skipping ``fill_bits`` bits."""
    if fill_bits + count * 7 > len(data) * 8:
        raise PduError(f"user data too short for {count} septets")
    value = int.from_bytes(data, "little")
    return [(value >> (fill_bits + 7 * i)) & 0x7F for i in range(count)]


def packed_octets(septets: int, fill_bits: int = 0) -> int:
    """Octets that ``septets`` septets take after ``fill_bits`` fill bits."""
    return (fill_bits + septets * 7 + 7) // 8
