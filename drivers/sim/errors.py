"""Final result codes a simulated modem answers with when a command fails.

A handler raises one of these; the engine turns it into the bytes a real modem prints,
according to ``AT+CMEE`` (0: ``ERROR``, 1: numeric, 2: verbose) and the personality.
"""

from __future__ import annotations

# 3GPP TS 27.007 section 9.2: the +CME ERROR codes a simulated modem uses.
CME_TEXT: dict[int, str] = {
    0: "phone failure",
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    16: "incorrect password",
    30: "no network service",
    50: "Incorrect parameters",
    100: "unknown",
}

# 3GPP TS 27.005 section 3.2.5 and TS 24.011 annex E: the +CMS ERROR codes used here.
CMS_TEXT: dict[int, str] = {
    8: "Operator determined barring",
    10: "Call barred",
    21: "Short message transfer rejected",
    27: "Destination out of service",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Congestion",
    47: "Resources unavailable, unspecified",
    50: "Requested facility not subscribed",
    300: "ME failure",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    313: "SIM failure",
    314: "SIM busy",
    316: "SIM PUK required",
    320: "memory failure",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
}


class AtFailure(Exception):
    """A command failed; the engine prints the matching final result code."""


class CmeError(AtFailure):
    """A 27.007 equipment error (``+CME ERROR: <code>``)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"+CME ERROR: {code}")
        self.code = code


class CmsError(AtFailure):
    """A 27.005 message service error (``+CMS ERROR: <code>``)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"+CMS ERROR: {code}")
        self.code = code


class SyntaxFailure(AtFailure):
    """A malformed or out-of-range argument: plain ``ERROR`` (or CME 50 when CMEE is on)."""


class UnknownCommand(AtFailure):
    """A command this modem does not implement."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown command {name}")
        self.name = name


def format_cme(code: int, cmee: int) -> str:
    """The final result line for a +CME ERROR under ``AT+CMEE=<cmee>``."""
    if cmee == 0:
        return "ERROR"
    if cmee == 2:
        return f"+CME ERROR: {CME_TEXT.get(code, 'unknown')}"
    return f"+CME ERROR: {code}"


def format_cms(code: int, cmee: int) -> str:
    """The final result line for a +CMS ERROR (27.005 prints it whatever CMEE says)."""
    if cmee == 2:
        return f"+CMS ERROR: {CMS_TEXT.get(code, 'unknown error')}"
    return f"+CMS ERROR: {code}"
