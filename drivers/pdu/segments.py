"""Alphabet choice and segmentation of a text into SMS parts (TS 23.040 9.2.3.24.1)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from drivers.pdu import gsm7
from drivers.pdu.dcs import Encoding

MAX_OCTETS = 140
# UDH sizes, each element with its IEI and length octets.
CONCAT8_OCTETS = 5
CONCAT16_OCTETS = 6
SHIFT_OCTETS = 3

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
    language: int | None  # national single shift table, None for the default extension


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


def _udh_octets(*elements: int) -> int:
    """Octets of a UDH holding elements of these sizes, UDHL included (0 when none)."""
    return sum(elements) + 1 if any(elements) else 0


def _gsm7_capacity(udh_octets: int) -> int:
    """Septets left after the UDH and its fill bits: 160, 153 (8-bit concat), 152, ..."""
    return (MAX_OCTETS * 8 - udh_octets * 8) // 7


def _ucs2_capacity(udh_octets: int) -> int:
    """UTF-16 units left after the UDH: 70, 67 (8-bit concat), 66 (16-bit)."""
    return (MAX_OCTETS - udh_octets) // 2


def _gsm7_costs(text: str, language: int | None) -> dict[str, int]:
    return {ch: gsm7.septet_count(ch, language) for ch in set(text)}


def _ucs2_costs(text: str) -> dict[str, int]:
    # Characters outside the BMP become a surrogate pair: two UTF-16 units.
    return {ch: 2 for ch in set(text) if ord(ch) > 0xFFFF}


def plan(
    text: str,
    *,
    force_ucs2: bool = False,
    smart: bool = False,
    ref16: bool = False,
    spanish_shift: bool = False,
) -> Plan:
    """Choose the alphabet for ``text`` and cut it into parts.

    GSM 7-bit when every character fits; else, with ``spanish_shift``, GSM 7-bit with the
    Spanish single shift table (UDH IEI 0x24) when that covers the text (á í ó ú ç keep
    their accents for two septets each); else, with ``smart``, GSM 7-bit after replacing
    look-alikes and folding accents; else UCS-2.
    """
    replaced: tuple[tuple[str, str], ...] = ()
    encoding = Encoding.UCS2
    language: int | None = None
    body = text
    if not force_ucs2:
        if gsm7.is_gsm7(text):
            encoding = Encoding.GSM7
        elif spanish_shift and gsm7.is_gsm7(text, gsm7.SPANISH):
            encoding, language = Encoding.GSM7, gsm7.SPANISH
        elif smart:
            result = smart_replace(text)
            if result is not None:
                body, replaced = result
                encoding = Encoding.GSM7
    concat = CONCAT16_OCTETS if ref16 else CONCAT8_OCTETS
    shift = SHIFT_OCTETS if language is not None else 0
    if encoding is Encoding.GSM7:
        single = _gsm7_capacity(_udh_octets(shift))
        multi = _gsm7_capacity(_udh_octets(concat, shift))
        chunks, units = _split(body, _gsm7_costs(body, language), single, multi)
    else:
        single, multi = _ucs2_capacity(0), _ucs2_capacity(_udh_octets(concat))
        chunks, units = _split(body, _ucs2_costs(body), single, multi)
    return Plan(encoding, body, replaced, chunks, units, language)


def segments(
    text: str, *, force_ucs2: bool = False, smart: bool = False, spanish_shift: bool = False
) -> SegmentInfo:
    """What ``text`` costs to send: alphabet, number of parts (8-bit concatenation reference),
    septets or UCS-2 units, and the replacements smart mode made."""
    p = plan(text, force_ucs2=force_ucs2, smart=smart, spanish_shift=spanish_shift)
    return SegmentInfo(p.encoding, len(p.chunks), p.units, p.replaced_chars)
