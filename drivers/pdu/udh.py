"""The user data header (TS 23.040 9.2.3.24): information elements, concatenation, ports."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

IEI_CONCAT_8 = 0x00
IEI_PORTS_8 = 0x04
IEI_PORTS_16 = 0x05
IEI_CONCAT_16 = 0x08
IEI_SINGLE_SHIFT = 0x24


@dataclass(frozen=True, slots=True)
class UdhElement:
    """One information element: its identifier and raw data (unknown ones are kept as is)."""

    iei: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Concat:
    """Concatenation: reference shared by all parts, total parts, this part's number (1-based)."""

    ref: int
    total: int
    seq: int


def encode_udh(elements: Iterable[UdhElement]) -> bytes:
    """UDHL followed by the elements."""
    body = b"".join(bytes((e.iei, len(e.data))) + e.data for e in elements)
    return bytes((len(body),)) + body


def parse_udh(header: bytes) -> tuple[UdhElement, ...]:
    """Elements of a header body (without its UDHL octet).

    UDHL already tells where the text starts, so a malformed element does not spoil the
    message: an element running past the header is kept with the octets that are there, and
    parsing stops.  Real modems show such headers (mangled concatenation elements).
    """
    elements: list[UdhElement] = []
    pos = 0
    while pos < len(header):
        iei = header[pos]
        length = header[pos + 1] if pos + 1 < len(header) else 0
        elements.append(UdhElement(iei, header[pos + 2 : pos + 2 + length]))
        pos += 2 + length
    return tuple(elements)


def concat_element(ref: int, total: int, seq: int, *, ref16: bool = False) -> UdhElement:
    """The concatenation element for one part (8-bit reference unless ``ref16``)."""
    if ref16:
        return UdhElement(IEI_CONCAT_16, bytes((ref >> 8, ref & 0xFF, total, seq)))
    return UdhElement(IEI_CONCAT_8, bytes((ref, total, seq)))


def find_concat(elements: Iterable[UdhElement]) -> Concat | None:
    """The concatenation info, if a well-formed element is present.

    TS 23.040 9.2.3.24.1: a receiver ignores the element when the part number is 0 or exceeds
    the total, so such an element is kept in ``udh`` but yields no Concat.
    """
    for e in elements:
        if e.iei == IEI_CONCAT_8 and len(e.data) == 3:
            ref, total, seq = e.data[0], e.data[1], e.data[2]
        elif e.iei == IEI_CONCAT_16 and len(e.data) == 4:
            ref, total, seq = int.from_bytes(e.data[:2], "big"), e.data[2], e.data[3]
        else:
            continue
        if total >= 1 and 1 <= seq <= total:
            return Concat(ref, total, seq)
    return None


def find_ports(elements: Iterable[UdhElement]) -> tuple[int, int] | None:
    """(destination, originator) application ports, 8- or 16-bit addressing."""
    for e in elements:
        if e.iei == IEI_PORTS_16 and len(e.data) == 4:
            return int.from_bytes(e.data[:2], "big"), int.from_bytes(e.data[2:], "big")
        if e.iei == IEI_PORTS_8 and len(e.data) == 2:
            return e.data[0], e.data[1]
    return None


def find_single_shift(elements: Iterable[UdhElement]) -> int | None:
    """The national language single shift table requested, if any."""
    for e in elements:
        if e.iei == IEI_SINGLE_SHIFT and len(e.data) == 1:
            return e.data[0]
    return None
