"""TP-UDL and TP-UD (TS 23.040 9.2.3.16, 9.2.3.24): header, fill bits, text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from drivers.pdu import gsm7
from drivers.pdu.dcs import Encoding, parse_dcs
from drivers.pdu.errors import PduError
from drivers.pdu.udh import UdhElement, encode_udh, find_single_shift, parse_udh

MAX_SEPTETS = 160
MAX_OCTETS = 140
SIM_PADDING = 0xFF


@dataclass(frozen=True, slots=True)
class UserData:
    """Decoded user data: text, alphabet, header elements, raw data after the header."""

    text: str
    encoding: Encoding
    message_class: int | None
    udh: tuple[UdhElement, ...]
    data: bytes


def _header_septets(header_octets: int) -> tuple[int, int]:
    """(septets the header occupies, fill bits) so the text starts on a septet boundary."""
    septets = (header_octets * 8 + 6) // 7
    return septets, septets * 7 - header_octets * 8


def encode_user_data(
    text: str, encoding: Encoding, udh: Sequence[UdhElement] = (), language: int | None = None
) -> bytes:
    """TP-UDL followed by TP-UD for one part; PduError when it exceeds 140 octets.

    ``language`` selects a national single shift table for GSM 7-bit (its UDH element must be
    in ``udh``).
    """
    header = encode_udh(udh) if udh else b""
    if encoding is Encoding.GSM7:
        header_septets, fill = _header_septets(len(header))
        septets = gsm7.encode_text(text, language)
        udl = header_septets + len(septets)
        if udl > MAX_SEPTETS:
            raise PduError(f"text needs {udl} septets, more than {MAX_SEPTETS} in one part")
        return bytes((udl,)) + header + gsm7.pack(septets, fill)
    try:
        body = header + text.encode("utf-16-be" if encoding is Encoding.UCS2 else "latin-1")
    except UnicodeEncodeError as exc:
        raise PduError(
            f"text: {exc.object[exc.start]!r} cannot be encoded ({exc.reason})"
        ) from None
    if len(body) > MAX_OCTETS:
        raise PduError(f"user data is {len(body)} octets, more than {MAX_OCTETS} in one part")
    return bytes((len(body),)) + body


def decode_user_data(tpdu: bytes, pos: int, *, dcs: int, udhi: bool) -> UserData:
    """Decode TP-UDL/TP-UD starting at ``pos`` (the UDL octet), to the end of the TPDU.

    Octets beyond what UDL announces are accepted only when they are all ``FF``: a PDU read
    from a SIM record is padded that way.  Anything else is a length mismatch.
    """
    if pos >= len(tpdu):
        raise PduError("udl: missing user data length")
    udl = tpdu[pos]
    raw = tpdu[pos + 1 :]
    coding = parse_dcs(dcs)
    # TS 23.042 compression is not implemented by handsets in practice; hand the octets over.
    encoding = Encoding.BIT8 if coding.compressed else coding.encoding
    if encoding is Encoding.GSM7:
        if udl > MAX_SEPTETS:
            raise PduError(f"udl: {udl} septets exceed {MAX_SEPTETS}")
        needed = gsm7.packed_octets(udl)
    else:
        if udl > MAX_OCTETS:
            raise PduError(f"udl: {udl} octets exceed {MAX_OCTETS}")
        needed = udl
    if len(raw) < needed:
        raise PduError(f"udl: user data is {len(raw)} octets, UDL {udl} needs {needed}")
    if any(b != SIM_PADDING for b in raw[needed:]):
        raise PduError(f"udl: {len(raw) - needed} octets follow the user data UDL {udl} announces")
    ud = raw[:needed]

    header_octets = 0
    elements: tuple[UdhElement, ...] = ()
    if udhi:
        if not ud:
            raise PduError("udh: header indicator set but the user data is empty")
        header_octets = ud[0] + 1
        if header_octets > len(ud):
            raise PduError(f"udh: header of {header_octets} octets exceeds the user data")
        elements = parse_udh(ud[1:header_octets])
    body = ud[header_octets:]

    if encoding is Encoding.GSM7:
        header_septets, fill = _header_septets(header_octets)
        count = udl - header_septets
        if count < 0:
            raise PduError(f"udl: {udl} septets is less than the header's {header_septets}")
        language = find_single_shift(elements)
        table = gsm7.SINGLE_SHIFT_TABLES.get(language) if language is not None else None
        text = gsm7.decode_septets(gsm7.unpack(body, count, fill), table)
    elif encoding is Encoding.UCS2:
        # A broken or lone surrogate becomes U+FFFD: the text must stay storable as UTF-8.
        text = body.decode("utf-16-be", errors="replace")
    else:
        # 8-bit data has no alphabet; latin-1 maps each octet to one character, losslessly.
        text = body.decode("latin-1")
    return UserData(text, encoding, coding.message_class, elements, bytes(body))
