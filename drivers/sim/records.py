"""What the simulated network records: every part a modem sent (the per-SIM log).

Later tests use this log as the oracle for rate limits, so it is written when the modem
accepts the part (just before it answers ``+CMGS: <mr>``), with the clock's time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class OutgoingPart:
    """One SMS part as a modem received it from its client (PDU or text mode)."""

    recipient: str
    text: str
    encoding: str  # "gsm7", "ucs2", "8bit"
    concat_ref: int | None
    concat_total: int
    concat_seq: int
    status_report: bool


@dataclass(frozen=True)
class SentRecord:
    """One part a modem sent: the per-SIM log entry."""

    time: datetime
    modem: str
    iccid: str
    sender: str
    recipient: str
    text: str
    encoding: str
    mr: int
    part: int  # 1-based sequence in its message
    parts: int
    concat_ref: int | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (time as ISO 8601 UTC)."""
        return {
            "time": self.time.isoformat(),
            "modem": self.modem,
            "iccid": self.iccid,
            "sender": self.sender,
            "recipient": self.recipient,
            "text": self.text,
            "encoding": self.encoding,
            "mr": self.mr,
            "part": self.part,
            "parts": self.parts,
            "concat_ref": self.concat_ref,
        }
