"""The one error type of the PDU codec."""

from __future__ import annotations


class PduError(ValueError):
    """A PDU (or text to encode) that the codec cannot handle; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
