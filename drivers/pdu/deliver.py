"""SMS-DELIVER (TS 23.040 9.2.2.1): what the network hands a modem."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from drivers.pdu.address import decode_address, encode_address, encode_smsc
from drivers.pdu.concat import part_headers
from drivers.pdu.dcs import Encoding, make_dcs
from drivers.pdu.errors import PduError
from drivers.pdu.segments import plan
from drivers.pdu.timestamps import TIMESTAMP_OCTETS, decode_timestamp, encode_timestamp
from drivers.pdu.udh import Concat, UdhElement, find_concat, find_ports
from drivers.pdu.userdata import decode_user_data, encode_user_data

MTI_DELIVER = 0x00
_MMS_NO_MORE = 0x04  # TP-MMS set means no more messages are waiting
_UDHI = 0x40


@dataclass(frozen=True, slots=True)
class Deliver:
    """A decoded SMS-DELIVER."""

    smsc: str | None
    sender: str
    text: str
    encoding: Encoding
    concat: Concat | None
    scts: datetime
    pid: int
    dcs: int
    udh: tuple[UdhElement, ...]
    message_class: int | None
    data: bytes
    ports: tuple[int, int] | None


def encode_deliver(
    sender: str,
    text: str,
    *,
    scts: datetime,
    smsc: str | None = None,
    force_ucs2: bool = False,
    concat_ref: int | None = None,
    spanish_shift: bool = False,
) -> list[bytes]:
    """Full SMS-DELIVER PDUs, SMSC field included, as a modem shows them; one per part.

    ``sender`` may be a number (``+`` international) or an alphanumeric name.
    """
    origin = encode_address(sender, field="sender", allow_alpha=True)
    prefix = encode_smsc(smsc)
    stamp = encode_timestamp(scts)
    p = plan(text, force_ucs2=force_ucs2, spanish_shift=spanish_shift)
    headers = part_headers(len(p.chunks), concat_ref, language=p.language)
    dcs = make_dcs(p.encoding)
    pdus: list[bytes] = []
    for chunk, udh in zip(p.chunks, headers, strict=True):
        first = MTI_DELIVER | _MMS_NO_MORE | (_UDHI if udh else 0)
        body = bytes((first,)) + origin + bytes((0x00, dcs)) + stamp
        pdus.append(prefix + body + encode_user_data(chunk, p.encoding, udh, p.language))
    return pdus


def decode_deliver(tpdu: bytes, smsc: str | None) -> Deliver:
    """Decode an SMS-DELIVER TPDU."""
    first = tpdu[0]
    sender, pos = decode_address(tpdu, 1, field="sender")
    if pos + 2 > len(tpdu):
        raise PduError("pid: truncated SMS-DELIVER")
    pid, dcs = tpdu[pos], tpdu[pos + 1]
    scts = decode_timestamp(tpdu, pos + 2, field="scts")
    ud = decode_user_data(tpdu, pos + 2 + TIMESTAMP_OCTETS, dcs=dcs, udhi=bool(first & _UDHI))
    return Deliver(
        smsc=smsc,
        sender=sender,
        text=ud.text,
        encoding=ud.encoding,
        concat=find_concat(ud.udh),
        scts=scts,
        pid=pid,
        dcs=dcs,
        udh=ud.udh,
        message_class=ud.message_class,
        data=ud.data,
        ports=find_ports(ud.udh),
    )
