"""Values and errors of a modem: its states, what it knows about itself, inbound SMS."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from drivers.pdu import Deliver


class ModemState(StrEnum):
    """Life cycle of a modem; FAILED needs a human and is never left on its own."""

    OPENING = "opening"
    INITIALISING = "initialising"
    READY = "ready"
    DEGRADED = "degraded"  # answering, but not registered (or similar): sends may fail
    GONE = "gone"
    RECONNECTING = "reconnecting"
    FAILED = "failed"  # wrong PIN, PUK needed, SIM missing or broken


@dataclass(frozen=True)
class ModemInfo:
    """What the modem told about itself and its network at the last look."""

    manufacturer: str | None = None
    model: str | None = None
    revision: str | None = None
    imei: str | None = None
    imsi: str | None = None
    iccid: str | None = None
    operator: str | None = None
    technology: str | None = None  # "2G" | "3G" | "4G", from +COPS <AcT>
    signal_dbm: int | None = None
    # "home" | "roaming" | "searching" | "denied" | "unknown" | "not_registered"
    registration: str = "unknown"
    storage_used: int | None = None
    storage_total: int | None = None


@dataclass(frozen=True)
class InboundSms:
    """One received SMS, decoded; ``received_via`` is "cmti", "cmt" or "sweep"."""

    storage: str | None
    index: int | None
    pdu: str
    message: Deliver
    received_via: str


class ModemNotReady(Exception):
    """The modem cannot take a command now (not open, initialising, failed...)."""

    def __init__(self, name: str, state: ModemState, reason: str) -> None:
        super().__init__(f"modem {name} is {state}: {reason}")
        self.state = state
        self.reason = reason


class SendOutcomeUnknown(Exception):
    """Ctrl-Z was written but no answer came (timeout or port lost): the SMS may be out.

    DESIGN.md, Decisions: "unknown outcomes" -- treat like a part left ``sending`` by a crash.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SendAborted(Exception):
    """``before_submit`` said no at the ``> `` prompt; Esc was sent, nothing went out."""


class NeedsHuman(Exception):
    """Initialisation found something only a person can fix (SIM missing, PUK...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PinRejected(NeedsHuman):
    """The SIM refused the PIN (or wants a PUK); never retried by the driver."""

    def __init__(
        self,
        reason: str,
        tries_left: int | None = None,
        *,
        iccid: str | None = None,
        wants_puk: bool = False,
    ) -> None:
        super().__init__(reason if tries_left is None else f"{reason} ({tries_left} tries left)")
        self.tries_left = tries_left
        self.iccid = iccid  # the SIM whose PIN was missing or wrong (None: unreadable)
        self.wants_puk = wants_puk  # a new PIN cannot help: only a PUK can
