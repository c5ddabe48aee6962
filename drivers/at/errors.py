"""Typed AT errors and the +CMS / +CME code tables (TS 27.005 §3.2.5, TS 27.007 §9.2).

Codes below 128 in a ``+CMS ERROR`` are the network's RP/CP causes (TS 24.011 annex E,
TS 23.040 §9.2.3.22); 300-511 are the modem's own. Each code carries a meaning and a class
(DESIGN.md, Decisions: "+CMS ERROR classes") so the gateway decides retry / fail / take the
SIM out of service from data, not from scattered literals.
"""

from __future__ import annotations

from enum import StrEnum


class CmsClass(StrEnum):
    """What a ``+CMS ERROR`` means for the message and the SIM that sent it."""

    TEMPORARY = "temporary"  # retry with backoff; another SIM may take it
    PERMANENT = "permanent"  # fail this message with code and meaning
    SIM_FAULT = "sim_fault"  # take the SIM out of service, hand its work back, alarm


_T, _P, _S = CmsClass.TEMPORARY, CmsClass.PERMANENT, CmsClass.SIM_FAULT

# code -> (meaning, class).
CMS_CODES: dict[int, tuple[str, CmsClass]] = {
    1: ("Unassigned (unallocated) number", _P),
    8: ("Operator determined barring", _S),
    10: ("Call barred", _S),
    17: ("Network failure", _T),
    21: ("Short message transfer rejected", _P),
    22: ("Memory capacity exceeded", _T),
    27: ("Destination out of order", _T),
    28: ("Unidentified subscriber", _P),
    29: ("Facility rejected", _P),
    30: ("Unknown subscriber", _P),
    38: ("Network out of order", _T),
    41: ("Temporary failure", _T),
    42: ("Congestion", _T),
    47: ("Resources unavailable, unspecified", _T),
    50: ("Requested facility not subscribed", _S),
    69: ("Requested facility not implemented", _P),
    81: ("Invalid short message transfer reference value", _T),
    95: ("Invalid message, unspecified", _P),
    96: ("Invalid mandatory information", _P),
    97: ("Message type non-existent or not implemented", _P),
    98: ("Message not compatible with short message protocol state", _T),
    99: ("Information element non-existent or not implemented", _P),
    111: ("Protocol error, unspecified", _T),
    127: ("Interworking, unspecified", _T),
    128: ("Telematic interworking not supported", _P),
    129: ("Short message Type 0 not supported", _P),
    130: ("Cannot replace short message", _P),
    143: ("Unspecified TP-PID error", _P),
    144: ("Data coding scheme (alphabet) not supported", _P),
    145: ("Message class not supported", _P),
    159: ("Unspecified TP-DCS error", _P),
    160: ("Command cannot be actioned", _P),
    161: ("Command unsupported", _P),
    175: ("Unspecified TP-Command error", _P),
    176: ("TPDU not supported", _P),
    192: ("SC busy", _T),
    193: ("No SC subscription", _S),
    194: ("SC system failure", _T),
    195: ("Invalid SME address", _P),
    196: ("Destination SME barred", _P),
    197: ("SM Rejected-Duplicate SM", _P),
    198: ("TP-VPF not supported", _P),
    199: ("TP-VP not supported", _P),
    208: ("(U)SIM SMS storage full", _T),
    209: ("No SMS storage capability in (U)SIM", _T),
    210: ("Error in MS", _T),
    211: ("Memory capacity exceeded", _T),
    212: ("(U)SIM Application Toolkit busy", _T),
    213: ("(U)SIM data download error", _T),
    255: ("Unspecified error cause", _T),
    300: ("ME failure", _S),
    301: ("SMS service of ME reserved", _S),
    302: ("Operation not allowed", _T),
    303: ("Operation not supported", _P),
    304: ("Invalid PDU mode parameter", _P),
    305: ("Invalid text mode parameter", _P),
    310: ("(U)SIM not inserted", _S),
    311: ("(U)SIM PIN required", _S),
    312: ("PH-(U)SIM PIN required", _S),
    313: ("(U)SIM failure", _S),
    314: ("(U)SIM busy", _T),
    315: ("(U)SIM wrong", _S),
    316: ("(U)SIM PUK required", _S),
    317: ("(U)SIM PIN2 required", _S),
    318: ("(U)SIM PUK2 required", _S),
    320: ("Memory failure", _T),
    321: ("Invalid memory index", _T),
    322: ("Memory full", _T),
    330: ("SMSC address unknown", _S),
    331: ("No network service", _S),
    332: ("Network timeout", _S),
    340: ("No +CNMA acknowledgement expected", _T),
    500: ("Unknown error", _T),
}

# SIM800-class modules answer 500 for no credit, barring or a bad SMSC: once is noise, a
# repeat on the same SIM is a SIM fault (DESIGN.md, "+CMS ERROR classes").
_REPEATED_FAULT = frozenset({500})

# TS 27.007 §9.2: the +CME codes a modem driver acts on.
CME_CODES: dict[int, str] = {
    0: "Phone failure",
    1: "No connection to phone",
    3: "Operation not allowed",
    4: "Operation not supported",
    5: "PH-SIM PIN required",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    16: "Incorrect password",
    17: "SIM PIN2 required",
    18: "SIM PUK2 required",
    20: "Memory full",
    21: "Invalid index",
    22: "Not found",
    23: "Memory failure",
    24: "Text string too long",
    25: "Invalid characters in text string",
    26: "Dial string too long",
    27: "Invalid characters in dial string",
    30: "No network service",
    31: "Network timeout",
    32: "Network not allowed - emergency calls only",
    50: "Incorrect parameters",
    100: "Unknown",
}


def cms_meaning(code: int | None) -> str:
    """The human meaning of a ``+CMS ERROR`` code ("unknown" when not in the table)."""
    if code is None:
        return "unknown"
    entry = CMS_CODES.get(code)
    return entry[0] if entry else f"unknown CMS error {code}"


def classify_cms(code: int | None, *, repeated: bool = False) -> CmsClass:
    """The class of a ``+CMS ERROR``: temporary, permanent for the message, or SIM fault.

    ``repeated`` says the same SIM answered the same code just before; it turns 500 into a
    SIM fault. Unknown codes are temporary: retrying is safe, failing a message is not.
    """
    if code is None:
        return CmsClass.TEMPORARY
    if repeated and code in _REPEATED_FAULT:
        return CmsClass.SIM_FAULT
    entry = CMS_CODES.get(code)
    return entry[1] if entry else CmsClass.TEMPORARY


def cme_meaning(code: int | None) -> str:
    """The human meaning of a ``+CME ERROR`` code."""
    if code is None:
        return "unknown"
    return CME_CODES.get(code, f"unknown CME error {code}")


def _code_from_text(text: str, table: dict[int, str]) -> int | None:
    # Verbose errors (AT+CMEE=2) print the meaning; map it back so callers always get a code.
    folded = text.strip().lower()
    for code, meaning in table.items():
        if meaning.lower() == folded:
            return code
    return None


class AtError(Exception):
    """A command ended in an error final result (or no final result)."""

    def __init__(self, command: str, final: str, message: str | None = None) -> None:
        super().__init__(message or f"{command!r} failed: {final!r}")
        self.command = command
        self.final = final


class AtTimeout(AtError):
    """No final result in time. ``written`` says a payload (PDU + Ctrl-Z) had been sent."""

    def __init__(self, command: str, timeout: float, *, written: bool = False) -> None:
        super().__init__(command, "", f"{command!r}: no final result within {timeout:g} s")
        self.timeout = timeout
        self.written = written


class PromptAborted(AtError):
    """The caller's check at the ``> `` prompt said no; the channel sent Esc."""


class CmeError(AtError):
    """``+CME ERROR: <n|text>`` (TS 27.007 §9.2)."""

    def __init__(self, command: str, final: str, code: int | None, text: str) -> None:
        self.code = code
        self.text = text
        self.meaning = cme_meaning(code) if code is not None else text
        super().__init__(command, final, f"{command!r}: +CME ERROR {code} ({self.meaning})")


class CmsError(AtError):
    """``+CMS ERROR: <n|text>`` (TS 27.005 §3.2.5); classify with :func:`classify_cms`."""

    def __init__(self, command: str, final: str, code: int | None, text: str) -> None:
        self.code = code
        self.text = text
        self.meaning = cms_meaning(code) if code is not None else text
        super().__init__(command, final, f"{command!r}: +CMS ERROR {code} ({self.meaning})")


class PortGone(Exception):
    """The serial port closed or vanished. ``written``: a payload had been sent."""

    def __init__(self, reason: str, *, written: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.written = written


def error_from_final(command: str, final: str) -> AtError:
    """The typed error for an error final result line."""
    for prefix, cls, table in (
        ("+CME ERROR:", CmeError, CME_CODES),
        ("+CMS ERROR:", CmsError, {c: m for c, (m, _) in CMS_CODES.items()}),
    ):
        if final.upper().startswith(prefix):
            text = final[len(prefix) :].strip()
            # isascii: a noisy line may hold "²", which isdigit() accepts and int() refuses.
            code = int(text) if text.isascii() and text.isdigit() else _code_from_text(text, table)
            return cls(command, final, code, text)
    return AtError(command, final)
