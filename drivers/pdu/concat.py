"""Concatenation references for multi-part messages."""

from __future__ import annotations

import secrets

from drivers.pdu.errors import PduError
from drivers.pdu.udh import IEI_SINGLE_SHIFT, UdhElement, concat_element


def part_headers(
    parts: int, concat_ref: int | None, *, ref16: bool = False, language: int | None = None
) -> list[tuple[UdhElement, ...]]:
    """The UDH elements of each part: concatenation when there are several parts, and the
    national single shift element when ``language`` is set; none for a plain single part.

    Without ``concat_ref`` a random reference is drawn, so two messages to one recipient do not
    collide in the handset's reassembly.
    """
    if parts > 255:
        raise PduError(f"text needs {parts} parts, more than the 255 concatenation allows")
    shift = () if language is None else (UdhElement(IEI_SINGLE_SHIFT, bytes((language,))),)
    if parts == 1:
        return [shift]
    limit = 0xFFFF if ref16 else 0xFF
    ref = secrets.randbelow(limit + 1) if concat_ref is None else concat_ref
    if not 0 <= ref <= limit:
        raise ValueError(f"concat_ref {ref} is outside 0..{limit}")
    return [(concat_element(ref, parts, seq, ref16=ref16), *shift) for seq in range(1, parts + 1)]
