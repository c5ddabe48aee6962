"""SMS PDU codec (3GPP TS 23.040 / 23.038): pure functions, no I/O.

Encodes SMS-SUBMIT (and, for simulators, SMS-DELIVER and SMS-STATUS-REPORT), decodes all
three, and tells callers what a text costs in parts before it is sent.
"""

from drivers.pdu.dcs import Encoding
from drivers.pdu.decode import decode
from drivers.pdu.deliver import Deliver, encode_deliver
from drivers.pdu.errors import PduError
from drivers.pdu.segments import SegmentInfo, segments
from drivers.pdu.status_report import (
    StatusCategory,
    StatusReport,
    encode_status_report,
    status_category,
    status_text,
)
from drivers.pdu.submit import Submit, SubmitPart, encode_submit
from drivers.pdu.udh import Concat, UdhElement

__all__ = [
    "Concat",
    "Deliver",
    "Encoding",
    "PduError",
    "SegmentInfo",
    "StatusCategory",
    "StatusReport",
    "Submit",
    "SubmitPart",
    "UdhElement",
    "decode",
    "encode_deliver",
    "encode_status_report",
    "encode_submit",
    "segments",
    "status_category",
    "status_text",
]
