"""One entry point that decodes whatever PDU a modem shows."""

from __future__ import annotations

import binascii

from drivers.pdu.address import decode_smsc
from drivers.pdu.deliver import Deliver, decode_deliver
from drivers.pdu.errors import PduError
from drivers.pdu.status_report import StatusReport, decode_status_report
from drivers.pdu.submit import Submit, decode_submit

_MTI_MASK = 0x03


def _to_bytes(data: str | bytes) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    compact = "".join(data.split())
    try:
        return binascii.unhexlify(compact)
    except (binascii.Error, ValueError):
        raise PduError("pdu: not an even-length hexadecimal string") from None


def decode(data: str | bytes, *, has_smsc: bool = True) -> Deliver | Submit | StatusReport:
    """Decode an SMS-DELIVER, SMS-SUBMIT or SMS-STATUS-REPORT.

    ``data`` is hex (any case, whitespace ignored) or raw bytes.  ``has_smsc`` says whether the
    PDU starts with the SMSC field, as ``+CMGR``/``+CMGL``/``+CMT``/``+CDS`` show it on most
    modems.  Any malformed input raises PduError with the field and reason.
    """
    raw = _to_bytes(data)
    if not raw:
        raise PduError("pdu: empty")
    smsc: str | None = None
    offset = 0
    if has_smsc:
        smsc, offset = decode_smsc(raw)
    tpdu = raw[offset:]
    if not tpdu:
        raise PduError("pdu: no TPDU after the SMSC field")
    mti = tpdu[0] & _MTI_MASK
    try:
        if mti == 0:
            return decode_deliver(tpdu, smsc)
        if mti == 1:
            return decode_submit(tpdu, smsc)
        if mti == 2:
            return decode_status_report(tpdu, smsc)
    except IndexError:
        # Every field checks its own bounds; this only guards an oversight on a hostile PDU.
        raise PduError("pdu: truncated") from None
    raise PduError("mti: reserved message type 3")
