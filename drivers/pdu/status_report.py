"""SMS-STATUS-REPORT (TS 23.040 9.2.2.3) and the meaning of TP-ST (9.2.3.15)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from drivers.pdu.address import decode_address, encode_address, encode_smsc
from drivers.pdu.errors import PduError
from drivers.pdu.timestamps import TIMESTAMP_OCTETS, decode_timestamp, encode_timestamp
from drivers.pdu.udh import UdhElement
from drivers.pdu.userdata import decode_user_data

MTI_STATUS_REPORT = 0x02
_MMS_NO_MORE = 0x04
_UDHI = 0x40
_PI_PID = 0x01
_PI_DCS = 0x02
_PI_UDL = 0x04
_PI_EXTENSION = 0x80


class StatusCategory(StrEnum):
    """What TP-ST says about the submitted message."""

    DELIVERED = "delivered"  # 0x00-0x1F: final success
    PENDING = "pending"  # 0x20-0x3F: the SC is still trying
    FAILED_PERMANENT = "failed_permanent"  # 0x40-0x5F: permanent error, no more attempts
    FAILED_TEMPORARY = "failed_temporary"  # 0x60-0x7F: temporary errors, the SC gave up


_MEANINGS: dict[int, str] = {
    0x00: "short message received by the SME",
    0x01: "forwarded by the SC to the SME, delivery not confirmed",
    0x02: "short message replaced by the SC",
    0x20: "congestion, still trying",
    0x21: "SME busy, still trying",
    0x22: "no response from SME, still trying",
    0x23: "service rejected, still trying",
    0x24: "quality of service not available, still trying",
    0x25: "error in SME, still trying",
    0x40: "remote procedure error",
    0x41: "incompatible destination",
    0x42: "connection rejected by SME",
    0x43: "not obtainable",
    0x44: "quality of service not available",
    0x45: "no interworking available",
    0x46: "SM validity period expired",
    0x47: "SM deleted by originating SME",
    0x48: "SM deleted by SC administration",
    0x49: "SM does not exist",
    0x60: "congestion, SC gave up",
    0x61: "SME busy, SC gave up",
    0x62: "no response from SME, SC gave up",
    0x63: "service rejected, SC gave up",
    0x64: "quality of service not available, SC gave up",
    0x65: "error in SME, SC gave up",
}

_RANGE_TEXT = {
    StatusCategory.DELIVERED: "delivered",
    StatusCategory.PENDING: "temporary error, still trying",
    StatusCategory.FAILED_PERMANENT: "permanent error",
    StatusCategory.FAILED_TEMPORARY: "temporary error, SC gave up",
}


def status_category(status: int) -> StatusCategory:
    """The category of a TP-ST value, by range (the project's decisions: 0x00-0x1F success,
    0x20-0x3F still trying, 0x40-0x7F failure).

    TS 23.040 9.2.3.15 has an MS interpret reserved values as "service rejected" (0x63);
    that is applied to the values with bit 7 set, which belong to no range.  The value itself
    is always kept as received.
    """
    if status > 0x7F:
        return StatusCategory.FAILED_TEMPORARY
    return (
        StatusCategory.DELIVERED,
        StatusCategory.PENDING,
        StatusCategory.FAILED_PERMANENT,
        StatusCategory.FAILED_TEMPORARY,
    )[status >> 5]


def status_text(status: int) -> str:
    """A readable meaning of a TP-ST value, including reserved and SC-specific ones."""
    if status in _MEANINGS:
        return _MEANINGS[status]
    if status > 0x7F:
        return "reserved value, treated as service rejected"
    kind = "SC-specific" if status & 0x10 else "reserved"
    return f"{_RANGE_TEXT[status_category(status)]} ({kind} value)"


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A decoded SMS-STATUS-REPORT; pid/dcs/text/udh only when the SC sent the optional
    parameters after TP-ST."""

    smsc: str | None
    mr: int
    recipient: str
    scts: datetime
    discharge_time: datetime
    status: int
    category: StatusCategory
    status_text: str
    pid: int | None = None
    dcs: int | None = None
    text: str = ""
    udh: tuple[UdhElement, ...] = ()


def encode_status_report(
    mr: int,
    recipient: str,
    *,
    scts: datetime,
    discharge_time: datetime,
    status: int,
    smsc: str | None = None,
) -> bytes:
    """A full SMS-STATUS-REPORT PDU, SMSC field included, as a modem shows it in ``+CDS``."""
    if not 0 <= mr <= 0xFF:
        raise ValueError(f"mr {mr} is outside 0..255")
    if not 0 <= status <= 0xFF:
        raise ValueError(f"status {status} is outside 0..255")
    return (
        encode_smsc(smsc)
        + bytes((MTI_STATUS_REPORT | _MMS_NO_MORE, mr))
        + encode_address(recipient, field="recipient")
        + encode_timestamp(scts)
        + encode_timestamp(discharge_time)
        + bytes((status,))
    )


def decode_status_report(tpdu: bytes, smsc: str | None) -> StatusReport:
    """Decode an SMS-STATUS-REPORT TPDU, with its optional TP-PI parameters."""
    first = tpdu[0]
    if len(tpdu) < 2:
        raise PduError("mr: truncated SMS-STATUS-REPORT")
    recipient, pos = decode_address(tpdu, 2, field="recipient")
    scts = decode_timestamp(tpdu, pos, field="scts")
    discharge = decode_timestamp(tpdu, pos + TIMESTAMP_OCTETS, field="discharge_time")
    pos += 2 * TIMESTAMP_OCTETS
    if pos >= len(tpdu):
        raise PduError("status: truncated SMS-STATUS-REPORT")
    status = tpdu[pos]
    report = StatusReport(
        smsc=smsc,
        mr=tpdu[1],
        recipient=recipient,
        scts=scts,
        discharge_time=discharge,
        status=status,
        category=status_category(status),
        status_text=status_text(status),
    )
    rest = tpdu[pos + 1 :]
    # Nothing, or only SIM padding, after TP-ST: no optional parameters.
    if all(b == 0xFF for b in rest):
        return report
    pi = rest[0]
    pos = 1
    while rest[pos - 1] & _PI_EXTENSION:  # further TP-PI octets, nothing we use
        if pos >= len(rest):
            raise PduError("pi: truncated parameter indicator")
        pos += 1
    pid = dcs = None
    if pi & _PI_PID:
        if pos >= len(rest):
            raise PduError("pid: announced by TP-PI but missing")
        pid, pos = rest[pos], pos + 1
    if pi & _PI_DCS:
        if pos >= len(rest):
            raise PduError("dcs: announced by TP-PI but missing")
        dcs, pos = rest[pos], pos + 1
    text: str = ""
    udh: tuple[UdhElement, ...] = ()
    if pi & _PI_UDL:
        ud = decode_user_data(rest, pos, dcs=dcs or 0, udhi=bool(first & _UDHI))
        text, udh = ud.text, ud.udh
    elif any(b != 0xFF for b in rest[pos:]):
        raise PduError("pi: octets follow the parameters TP-PI announces")
    return replace(report, pid=pid, dcs=dcs, text=text, udh=udh)
