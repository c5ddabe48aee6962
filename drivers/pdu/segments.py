"""Alphabet choice and segmentation of a text into SMS parts (TS 23.040 9.2.3.24.1)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from drivers.pdu import gsm7
from drivers.pdu.dcs import Encoding

GSM7_SINGLE = 160
GSM7_MULTI_REF8 = 153  # 6-octet UDH + 1 fill bit = 7 septets
GSM7_MULTI_REF16 = 152  # 7-octet UDH = 8 septets
UCS2_SINGLE = 70
UCS2_MULTI_REF8 = 67  # (140 - 6) / 2
UCS2_MULTI_REF16 = 66  # (140 - 7) // 2
MAX_PARTS = 255

# Look-alikes that editors and phones put in text, and their GSM 7-bit stand-ins.
_LOOKALIKES: dict[str, str] = {
    **dict.fromkeys("‘’‚‛′´`‹›", "'"),
    **dict.fromkeys("“”„‟″«»", '"'),
    **dict.fromkeys("‐‑‒–—―−", "-"),
    **dict.fromkeys(
        "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
        "\u200a\u202f\u205f\u3000\t",
        " ",
    ),
    **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff\u00ad", ""),
    "…": "...",
    "•": "-",
    "ˆ": "^",
    "˜": "~",
}


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """What sending a text costs: alphabet, parts, septets or UCS-2 units, smart replacements."""

    encoding: Encoding
    parts: int
    units: int
    replaced_chars: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """The text to send, its alphabet, the replacements made, and its parts."""

    encoding: Encoding
    text: str
    replaced_chars: tuple[tuple[str, str], ...]
    chunks: tuple[str, ...]
    units: int


def _smart_char(ch: str) -> str | None:
    """A GSM 7-bit stand-in for ``ch``: a listed look-alike or the letter without accents."""
    if ch in _LOOKALIKES:
        return _LOOKALIKES[ch]
    base = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
    if base and base != ch and gsm7.is_gsm7(base):
        return base
    return None


def smart_replace(text: str) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """``text`` with look-alikes and accented letters replaced, or None if something else
    still needs UCS-2 (then the original text goes as UCS-2, unchanged)."""
    out: list[str] = []
    replaced: dict[str, str] = {}
    for ch in text:
        if gsm7.char_septets(ch) is not None:
            out.append(ch)
            continue
        stand_in = _smart_char(ch)
        if stand_in is None:
            return None
        replaced.setdefault(ch, stand_in)
        out.append(stand_in)
    return "".join(out), tuple(replaced.items())


def _split(text: str, cost: dict[str, int], single: int, multi: int) -> tuple[tuple[str, ...], int]:
    """Chunks of ``text`` by character, never splitting one character's units."""
    units = [cost.get(ch, 1) for ch in text]
    total = sum(units)
    if total <= single:
        return (text,), total
    chunks: list[str] = []
    start = used = 0
    for i, u in enumerate(units):
        if used + u > multi:
            chunks.append(text[start:i])
            start, used = i, 0
        used += u
    chunks.append(text[start:])
    return tuple(chunks), total


def _gsm7_costs(text: str) -> dict[str, int]:
    return {ch: gsm7.septet_count(ch) for ch in set(text)}


def _ucs2_costs(text: str) -> dict[str, int]:
    # Characters outside the BMP become a surrogate pair: two UTF-16 units.
    return {ch: 2 for ch in set(text) if ord(ch) > 0xFFFF}


def plan(text: str, *, force_ucs2: bool = False, smart: bool = False, ref16: bool = False) -> Plan:
    """Choose the alphabet for ``text`` and cut it into parts."""
    replaced: tuple[tuple[str, str], ...] = ()
    encoding = Encoding.UCS2
    body = text
    if not force_ucs2:
        if gsm7.is_gsm7(text):
            encoding = Encoding.GSM7
        elif smart:
            result = smart_replace(text)
            if result is not None:
                body, replaced = result
                encoding = Encoding.GSM7
    if encoding is Encoding.GSM7:
        multi = GSM7_MULTI_REF16 if ref16 else GSM7_MULTI_REF8
        chunks, units = _split(body, _gsm7_costs(body), GSM7_SINGLE, multi)
    else:
        multi = UCS2_MULTI_REF16 if ref16 else UCS2_MULTI_REF8
        chunks, units = _split(body, _ucs2_costs(body), UCS2_SINGLE, multi)
    return Plan(encoding, body, replaced, chunks, units)


def segments(text: str, *, force_ucs2: bool = False, smart: bool = False) -> SegmentInfo:
    """What ``text`` costs to send: alphabet, number of parts (8-bit concatenation reference),
    septets or UCS-2 units, and the replacements smart mode made."""
    p = plan(text, force_ucs2=force_ucs2, smart=smart)
    return SegmentInfo(p.encoding, len(p.chunks), p.units, p.replaced_chars)
