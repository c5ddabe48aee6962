"""SMS-SUBMIT (TS 23.040 9.2.2.2): encoding our messages, decoding stored ones."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.pdu.address import decode_address, encode_address, is_alphanumeric
from drivers.pdu.concat import part_headers
from drivers.pdu.dcs import Encoding, make_dcs
from drivers.pdu.errors import PduError
from drivers.pdu.segments import plan
from drivers.pdu.timestamps import TIMESTAMP_OCTETS, vp_minutes_to_octet, vp_octet_to_minutes
from drivers.pdu.udh import Concat, UdhElement, find_concat
from drivers.pdu.userdata import decode_user_data, encode_user_data

MTI_SUBMIT = 0x01
_VPF_RELATIVE = 0x10
_VPF_MASK = 0x18
_SRR = 0x20
_UDHI = 0x40


@dataclass(frozen=True, slots=True)
class SubmitPart:
    """One encoded SMS-SUBMIT part, ready for ``AT+CMGS=<length>``."""

    tpdu: bytes

    @property
    def length(self) -> int:
        """TPDU octets, without the SMSC field: what ``AT+CMGS=<len>`` needs."""
        return len(self.tpdu)

    def hex(self, with_smsc: bool = True) -> str:
        """Uppercase hex of the PDU, prefixed with ``00`` (use the SIM's SMSC) by default."""
        return ("00" if with_smsc else "") + self.tpdu.hex().upper()


@dataclass(frozen=True, slots=True)
class Submit:
    """A decoded SMS-SUBMIT."""

    smsc: str | None
    recipient: str
    mr: int
    text: str
    encoding: Encoding
    concat: Concat | None
    pid: int
    dcs: int
    udh: tuple[UdhElement, ...]
    srr: bool
    vp_minutes: int | None
    message_class: int | None
    data: bytes


def encode_submit(
    to: str,
    text: str,
    *,
    srr: bool = True,
    vp_minutes: int | None = 1440,
    force_ucs2: bool = False,
    smart: bool = False,
    flash: bool = False,
    concat_ref: int | None = None,
    ref16: bool = False,
    spanish_shift: bool = False,
) -> list[SubmitPart]:
    """SMS-SUBMIT parts for ``text`` to ``to`` (``+`` international, else national digits).

    TP-MR is 0 (the modem assigns it), the SMSC is left to the SIM, TP-VP is relative
    (``vp_minutes``, rounded up to a representable step) or absent when None.
    ``spanish_shift`` lets accented Spanish text go as GSM 7-bit through the Spanish single
    shift table instead of UCS-2 (the handset must support national tables).
    """
    if is_alphanumeric(to):
        raise PduError(f"to: {to!r} is not a phone number (digits, optional leading +)")
    destination = encode_address(to, field="to")
    p = plan(text, force_ucs2=force_ucs2, smart=smart, ref16=ref16, spanish_shift=spanish_shift)
    headers = part_headers(len(p.chunks), concat_ref, ref16=ref16, language=p.language)
    first = MTI_SUBMIT | (_SRR if srr else 0) | (_VPF_RELATIVE if vp_minutes is not None else 0)
    vp = b"" if vp_minutes is None else bytes((vp_minutes_to_octet(vp_minutes),))
    dcs = make_dcs(p.encoding, flash=flash)
    parts: list[SubmitPart] = []
    for chunk, udh in zip(p.chunks, headers, strict=True):
        head = bytes((first | (_UDHI if udh else 0), 0x00))  # TP-MR 0: the modem sets it
        tail = bytes((0x00, dcs)) + vp + encode_user_data(chunk, p.encoding, udh, p.language)
        parts.append(SubmitPart(head + destination + tail))
    return parts


def decode_submit(tpdu: bytes, smsc: str | None) -> Submit:
    """Decode an SMS-SUBMIT TPDU (as a modem lists a stored outgoing message)."""
    first = tpdu[0]
    if len(tpdu) < 2:
        raise PduError("mr: truncated SMS-SUBMIT")
    mr = tpdu[1]
    recipient, pos = decode_address(tpdu, 2, field="recipient")
    if pos + 2 > len(tpdu):
        raise PduError("pid: truncated SMS-SUBMIT")
    pid, dcs = tpdu[pos], tpdu[pos + 1]
    pos += 2
    vpf = first & _VPF_MASK
    vp_minutes: int | None = None
    if vpf == _VPF_RELATIVE:
        if pos >= len(tpdu):
            raise PduError("vp: truncated SMS-SUBMIT")
        vp_minutes = vp_octet_to_minutes(tpdu[pos])
        pos += 1
    elif vpf:  # absolute or enhanced format: seven octets, not needed by callers
        pos += TIMESTAMP_OCTETS
    ud = decode_user_data(tpdu, pos, dcs=dcs, udhi=bool(first & _UDHI))
    return Submit(
        smsc=smsc,
        recipient=recipient,
        mr=mr,
        text=ud.text,
        encoding=ud.encoding,
        concat=find_concat(ud.udh),
        pid=pid,
        dcs=dcs,
        udh=ud.udh,
        srr=bool(first & _SRR),
        vp_minutes=vp_minutes,
        message_class=ud.message_class,
        data=ud.data,
    )
