"""USSD answers (``+CUSD: <m>[,<str>[,<dcs>]]``, TS 27.007 7.15) decoded to text.

Three shapes are seen in the field: text in the TE character set (``AT+CSCS="GSM"``), UCS-2
as hex when the DCS says so (0x48, or DCS group 0x11 with its language prefix), and, on many
Huawei firmwares, the GSM 7-bit septets still packed, as hex, with DCS 15.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.pdu.gsm7 import decode_septets, encode_text, pack, unpack

_CUSD = re.compile(r'^\s*(\d+)\s*(?:,\s*"([^"]*)"\s*(?:,\s*(\d+))?)?\s*$')
# Huawei's packed answers are whole sentences; a few hex digits are more likely plain text.
MIN_PACKED_OCTETS = 4
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")


class UssdError(Exception):
    """A USSD answer that cannot be read; ``field`` names what was wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class UssdAnswer:
    """A decoded ``+CUSD``: ``status`` 0 done, 1 the network wants a reply, 2 ended, 4 refused."""

    status: int
    text: str
    dcs: int | None


def parse_cusd(args: str) -> UssdAnswer:
    """The arguments after ``+CUSD:`` decoded (UssdError when they do not parse)."""
    m = _CUSD.match(args)
    if m is None:
        raise UssdError("+CUSD", f"unreadable answer {args[:60]!r}")
    dcs = int(m.group(3)) if m.group(3) is not None else None
    return UssdAnswer(int(m.group(1)), decode_text(m.group(2) or "", dcs), dcs)


def decode_text(raw: str, dcs: int | None) -> str:
    """The text of a USSD string for its data coding scheme (TS 23.038 section 5)."""
    if dcs is not None and _is_ucs2(dcs) and _HEX.match(raw) and len(raw) % 4 == 0:
        data = bytes.fromhex(raw)
        if dcs == 0x11:
            data = data[2:]  # a two-octet language code precedes the text
        return data.decode("utf-16-be", errors="replace")
    if _HEX.match(raw) and (dcs is None or dcs & 0xF0 in (0x00, 0x10, 0x40)):
        packed = _unpacked(raw)
        if packed is not None:
            return packed
    return raw


def _is_ucs2(dcs: int) -> bool:
    # 0x48 / 0x4x with UCS-2 bits, 0x11 (UCS-2 preceded by language), 0x9x / general groups.
    return dcs == 0x11 or (dcs & 0xC0 == 0x40 and dcs & 0x0C == 0x08) or dcs == 0x48


def _unpacked(raw: str) -> str | None:
    """Huawei's packed hex, when it is that: septets decode to printable text."""
    data = bytes.fromhex(raw)
    if len(data) < MIN_PACKED_OCTETS:
        return None  # too short to tell from text that happens to be hex ("CAFE")
    count = len(data) * 8 // 7
    septets = unpack(data, count)
    # 8 octets carry 9 septets; a trailing 0x0D (CR) pads, per TS 23.038 6.1.2.3.1.
    if septets and septets[-1] in (0x00, 0x0D) and len(data) % 7 == 0:
        septets = septets[:-1]
    text = decode_septets(septets)
    if not text or any(not ch.isprintable() and ch not in "\n\r" for ch in text):
        return None
    # Text that is itself plain hex digits would be read as hex only by mistake.
    if sum(ch.isalpha() for ch in text) < len(text) // 3:
        return None
    return text


def encode_packed(text: str) -> str:
    """Text as Huawei gives it (packed GSM 7-bit septets as hex): for the simulator and tests."""
    septets = encode_text(text)
    if len(septets) % 8 == 7:
        septets.append(0x0D)  # so the last octet's spare bit is not read as an '@'
    return pack(septets).hex().upper()
