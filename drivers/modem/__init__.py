"""A GSM modem: init, health, send a PDU, read and delete stored SMS, status reports."""

from drivers.modem.modem import Modem
from drivers.modem.types import (
    InboundSms,
    ModemInfo,
    ModemNotReady,
    ModemState,
    NeedsHuman,
    PinRejected,
    SendAborted,
    SendOutcomeUnknown,
)

__all__ = [
    "InboundSms",
    "Modem",
    "ModemInfo",
    "ModemNotReady",
    "ModemState",
    "NeedsHuman",
    "PinRejected",
    "SendAborted",
    "SendOutcomeUnknown",
]
