"""Parsers for the answers a modem gives: tolerant of the many shapes real firmware prints.

Every parser takes the text after the prefix (``"0,,23"`` for ``+CMGR: 0,,23``) and
returns a value or raises :class:`ParseError` naming the field. None of them trusts a
length field: the PDU line is the truth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class ParseError(ValueError):
    """A modem answer that cannot be read; ``field`` names what was wrong."""

    def __init__(self, field: str, text: str) -> None:
        super().__init__(f"cannot parse {field} from {text[:120]!r}")
        self.field = field
        self.text = text


def split_fields(text: str) -> list[str]:
    """Split a comma list, keeping commas inside double quotes; fields are stripped, unquoted."""
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    fields.append("".join(current).strip())
    return fields


def _int(value: str) -> int | None:
    value = value.strip()
    # isascii: str.isdigit() also accepts "²" and other digits int() refuses.
    return int(value) if value.isascii() and value.isdigit() else None


def is_hex(text: str) -> bool:
    """True for a non-empty run of hex digits (a PDU line)."""
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)


# -- signal, registration, operator, storage ---------------------------------------------


def rssi_to_dbm(rssi: int) -> int | None:
    """TS 27.007 §8.5: 0 -> -113 dBm, 1 -> -111, 2..30 -> -109..-53, 31 -> -51, 99 unknown."""
    if 0 <= rssi <= 31:
        return -113 + 2 * rssi
    return None


def parse_csq(text: str) -> int | None:
    """``+CSQ: <rssi>,<ber>`` -> dBm, None when unknown."""
    rssi = _int(split_fields(text)[0])
    if rssi is None:
        raise ParseError("+CSQ rssi", text)
    return rssi_to_dbm(rssi)


REGISTRATION = {
    0: "not_registered",
    1: "home",
    2: "searching",
    3: "denied",
    4: "unknown",
    5: "roaming",
    6: "home",  # registered for SMS only, home (27.007 §7.2)
    7: "roaming",  # registered for SMS only, roaming
}


def parse_creg(text: str, *, unsolicited: bool = False) -> str:
    """``+CREG: <n>,<stat>[,...]`` (answer) or ``+CREG: <stat>[,...]`` (URC) -> a word."""
    fields = split_fields(text)
    index = 0 if unsolicited else 1
    if len(fields) <= index:
        # Some firmware answers the read form with the stat alone.
        index = 0
    stat = _int(fields[index])
    if stat is None:
        raise ParseError("+CREG stat", text)
    return REGISTRATION.get(stat, "unknown")


def is_registered(word: str) -> bool:
    """True for home or roaming."""
    return word in ("home", "roaming")


def parse_cops(text: str) -> str | None:
    """``+COPS: <mode>[,<format>,<oper>[,<AcT>]]`` -> operator name, None when absent."""
    fields = split_fields(text)
    return fields[2] or None if len(fields) >= 3 else None


# 27.007 7.3 <AcT>: 0 GSM, 1 GSM compact, 3 EGPRS -> 2G; 2 UTRAN, 4-6 HSPA -> 3G; 7 E-UTRAN
# and 9 NB-IoT -> 4G (8 is EC-GSM-IoT: 2G).
_ACT = {0: "2G", 1: "2G", 3: "2G", 8: "2G", 2: "3G", 4: "3G", 5: "3G", 6: "3G", 7: "4G", 9: "4G"}


def parse_cops_technology(text: str) -> str | None:
    """``+COPS: <mode>,<format>,<oper>,<AcT>`` -> "2G" / "3G" / "4G", None when absent."""
    fields = split_fields(text)
    act = _int(fields[3]) if len(fields) >= 4 else None
    return _ACT.get(act) if act is not None else None


def parse_cpms(text: str) -> tuple[str | None, int, int]:
    """``+CPMS: "ME",3,50,...`` (read form) -> (memory, used, total) of the first memory.

    The set form answers without names (``+CPMS: 3,50,3,50,3,50``).
    """
    fields = split_fields(text)
    if len(fields) >= 3 and _int(fields[0]) is None:
        memory, used, total = fields[0] or None, _int(fields[1]), _int(fields[2])
    elif len(fields) >= 2:
        memory, used, total = None, _int(fields[0]), _int(fields[1])
    else:
        raise ParseError("+CPMS", text)
    if used is None or total is None:
        raise ParseError("+CPMS used/total", text)
    return memory, used, total


def parse_cpms_options(text: str) -> list[tuple[str, ...]]:
    """``+CPMS: ("SM","ME"),("SM","ME"),("SM")`` -> the memories each parameter accepts."""
    groups = re.findall(r"\(([^)]*)\)", text)
    if not groups:
        # Some firmware prints one flat list for all three parameters.
        flat = tuple(f for f in split_fields(text) if f)
        if not flat:
            raise ParseError("+CPMS=? memories", text)
        return [flat, flat, flat]
    return [tuple(f for f in split_fields(g) if f) for g in groups]


def choose_storage(options: list[tuple[str, ...]], preference: tuple[str, ...]) -> list[str]:
    """The preferred memory for each CPMS parameter that the modem accepts."""
    chosen: list[str] = []
    for accepted in options[:3]:
        upper = {a.upper(): a for a in accepted}
        pick = next((upper[p] for p in preference if p in upper), None)
        if pick is None:
            pick = accepted[0] if accepted else "SM"
        chosen.append(pick)
    return chosen


_ICCID = re.compile(r"\b(89[0-9]{16,18}[0-9Ff]?)\b")
_DIGITS = re.compile(r"\b([0-9]{14,20})\b")


def parse_iccid(lines: tuple[str, ...] | list[str]) -> str | None:
    """The ICCID in an answer: bare (SIM800) or prefixed (``+QCCID:``, ``^ICCID:``)."""
    for line in lines:
        m = _ICCID.search(line)
        if m:
            return m.group(1).upper().rstrip("F")
    return None


def parse_identity(lines: tuple[str, ...] | list[str]) -> str | None:
    """A run of 14-20 digits (IMEI, IMSI) anywhere in an answer."""
    for line in lines:
        m = _DIGITS.search(line)
        if m:
            return m.group(1)
    return None


def parse_text(lines: tuple[str, ...] | list[str], prefix: str) -> str | None:
    """The first answer line, without ``prefix`` (``+CGMI: x``) or vendor labels."""
    for line in lines:
        value = line[len(prefix) :] if line.upper().startswith(prefix.upper()) else line
        value = value.strip().strip('"')
        for label in ("Manufacturer:", "Model:", "Revision:"):
            if value.startswith(label):
                value = value[len(label) :].strip()
        if value:
            return value
    return None


def first_int(text: str) -> int | None:
    """The first integer in a line (PIN tries: ``+SPIC: 3,10,0,10``, ``#PCT: 2``...)."""
    m = re.search(r"(?<![0-9A-Za-z])([0-9]+)(?![0-9A-Za-z])", text)
    return int(m.group(1)) if m else None


# -- messages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredPdu:
    """One message read with AT+CMGR or AT+CMGL."""

    index: int | None
    stat: int | None
    length: int | None
    pdu: str


def parse_cmgr_header(text: str) -> tuple[int | None, int | None]:
    """``+CMGR: <stat>,[<alpha>],<length>`` in any real shape -> (stat, length).

    Seen: ``0,,23``, ``0,23`` (alpha missing), ``0,"name",23``, ``0`` (length missing),
    trailing spaces. The length is informational only.
    """
    fields = split_fields(text)
    if not fields or not fields[0]:
        raise ParseError("+CMGR stat", text)
    stat = _int(fields[0])
    if stat is None:
        raise ParseError("+CMGR stat", text)
    length = _int(fields[-1]) if len(fields) > 1 else None
    return stat, length


def parse_cmgl_header(text: str) -> tuple[int, int | None, int | None]:
    """``+CMGL: <index>,<stat>,[<alpha>],<length>`` in any real shape -> (index, stat, length)."""
    fields = split_fields(text)
    index = _int(fields[0])
    if index is None:
        raise ParseError("+CMGL index", text)
    stat = _int(fields[1]) if len(fields) > 1 else None
    length = _int(fields[-1]) if len(fields) > 2 else None
    return index, stat, length


def parse_cmgr(lines: tuple[str, ...], index: int | None) -> StoredPdu | None:
    """The message in an AT+CMGR answer; None when the slot is empty (no header, or no PDU)."""
    for pos, line in enumerate(lines):
        if line.startswith("+CMGR:"):
            stat, length = parse_cmgr_header(line[6:])
            pdu = next((ln for ln in lines[pos + 1 :] if is_hex(ln)), None)
            if pdu is None:
                return None
            return StoredPdu(index, stat, length, pdu.upper())
    return None


def parse_cmgl(lines: tuple[str, ...]) -> tuple[list[StoredPdu], list[str]]:
    """Every message in an AT+CMGL answer, plus the header lines that could not be read."""
    found: list[StoredPdu] = []
    bad: list[str] = []
    pos = 0
    while pos < len(lines):
        line = lines[pos]
        pos += 1
        if not line.startswith("+CMGL:"):
            continue
        try:
            index, stat, length = parse_cmgl_header(line[6:])
        except ParseError:
            bad.append(line)
            continue
        if pos < len(lines) and is_hex(lines[pos]):
            found.append(StoredPdu(index, stat, length, lines[pos].upper()))
            pos += 1
        else:
            bad.append(line)
    return found, bad


def parse_mem_index(text: str) -> tuple[str | None, int]:
    """``+CMTI: "SM",3`` / ``+CDSI: "SR",1`` -> (memory, index)."""
    fields = split_fields(text)
    index = _int(fields[-1])
    if index is None:
        raise ParseError("memory index", text)
    memory = fields[0] if len(fields) > 1 and fields[0] else None
    return memory, index


def parse_cmgs(text: str) -> int:
    """``+CMGS: <mr>[,<scts>]`` -> TP-MR."""
    mr = _int(split_fields(text)[0])
    if mr is None or mr > 255:
        raise ParseError("+CMGS mr", text)
    return mr


_CLIP = re.compile(r'^\s*"([^"]*)"\s*,\s*(\d+)')


def parse_clip(args: str) -> str | None:
    """The caller in ``+CLIP: "<number>",<type>[,...]`` (27.007 7.18); None if withheld."""
    m = _CLIP.match(args)
    if m is None:
        return None
    number = "".join(ch for ch in m.group(1) if ch.isdigit() or ch == "+")
    if not number.strip("+"):
        return None
    if m.group(2) == "145" and not number.startswith("+"):
        number = "+" + number  # international type: the '+' some firmware leaves out
    return number
