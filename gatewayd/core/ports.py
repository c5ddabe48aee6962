"""What the core needs from a modem: satisfied by ``drivers.modem.Modem`` and by test fakes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from drivers.modem import InboundSms, ModemInfo, ModemState
from drivers.pdu import StatusReport


class ModemPort(Protocol):
    """One modem as the gateway drives it."""

    @property
    def name(self) -> str:
        """The configured name."""
        ...

    @property
    def state(self) -> ModemState:
        """The life-cycle state now."""
        ...

    @property
    def state_reason(self) -> str:
        """Why it is in that state."""
        ...

    @property
    def info(self) -> ModemInfo:
        """What the modem last told about itself."""
        ...

    @property
    def identity(self) -> str | None:
        """The SIM's ICCID (IMEI where none can be read); ``None`` before init."""
        ...

    async def send_pdu(
        self, pdu_hex: str, length: int, *, before_submit: Callable[[], bool] | None = None
    ) -> int:
        """Send one SMS-SUBMIT and return its TP-MR (errors: see drivers.modem)."""
        ...

    def on_state_change(self, cb: Callable[[ModemState, str], None]) -> None:
        """Call ``cb(state, reason)`` on every state change."""
        ...

    def set_inbound_handler(self, cb: Callable[[InboundSms], Awaitable[None]]) -> None:
        """The SMS is deleted from the modem only after ``cb`` returns."""
        ...

    def set_report_handler(self, cb: Callable[[StatusReport], Awaitable[None]]) -> None:
        """Every status report, decoded."""
        ...
