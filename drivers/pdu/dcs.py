"""TP-DCS (TS 23.038 section 4): the alphabet and message class of the user data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Encoding(StrEnum):
    """Alphabet of the user data."""

    GSM7 = "gsm7"
    UCS2 = "ucs2"
    BIT8 = "8bit"


@dataclass(frozen=True, slots=True)
class DataCoding:
    """What a DCS octet says about the user data."""

    encoding: Encoding
    message_class: int | None
    compressed: bool


_ALPHABETS = (Encoding.GSM7, Encoding.BIT8, Encoding.UCS2, Encoding.GSM7)


def parse_dcs(dcs: int) -> DataCoding:
    """Interpret a DCS octet.  Reserved coding groups and alphabets read as GSM 7-bit, as
    TS 23.038 tells a receiver to assume."""
    group = dcs >> 4
    if group <= 0b0111:  # general data coding, with or without automatic deletion
        message_class = dcs & 0x3 if dcs & 0x10 else None
        return DataCoding(_ALPHABETS[(dcs >> 2) & 0x3], message_class, bool(dcs & 0x20))
    if group in (0b1100, 0b1101):  # message waiting indication, GSM 7-bit
        return DataCoding(Encoding.GSM7, None, False)
    if group == 0b1110:  # message waiting indication, UCS-2
        return DataCoding(Encoding.UCS2, None, False)
    if group == 0b1111:  # data coding / message class
        encoding = Encoding.BIT8 if dcs & 0x04 else Encoding.GSM7
        return DataCoding(encoding, dcs & 0x3, False)
    return DataCoding(Encoding.GSM7, None, False)


def make_dcs(encoding: Encoding, *, flash: bool = False) -> int:
    """DCS for our own messages: general coding group, class 0 (flash) when asked."""
    alphabet = {Encoding.GSM7: 0x00, Encoding.BIT8: 0x04, Encoding.UCS2: 0x08}[encoding]
    return alphabet | (0x10 if flash else 0x00)
