"""TP address fields (TS 23.040 9.1.2.5) and the SMSC address (TS 24.011 RP-address)."""

from __future__ import annotations

from drivers.pdu import gsm7
from drivers.pdu.errors import PduError

TOA_INTERNATIONAL = 0x91  # TON 1 international, NPI 1 ISDN/E.164
TOA_UNKNOWN = 0x81  # TON 0 unknown (national form as dialled), NPI 1
TOA_ALPHANUMERIC = 0xD0  # TON 5 alphanumeric (GSM 7-bit packed), NPI 0
TON_INTERNATIONAL = 1
TON_ALPHANUMERIC = 5

MAX_DIGITS = 20  # the address value is at most 10 octets
MAX_ALPHA_SEPTETS = 11  # 10 octets hold 11 septets

_BCD_DIGITS = "0123456789*#abc"
_DIGIT_NIBBLES = {ch: i for i, ch in enumerate(_BCD_DIGITS)}


def _bcd(digits: str) -> bytes:
    nibbles = [_DIGIT_NIBBLES[d] for d in digits]
    if len(nibbles) % 2:
        nibbles.append(0xF)
    return bytes(nibbles[i] | (nibbles[i + 1] << 4) for i in range(0, len(nibbles), 2))


def _unbcd(data: bytes, digits: int) -> str:
    out: list[str] = []
    for i in range(digits):
        nibble = (data[i // 2] >> (4 * (i % 2))) & 0xF
        if nibble == 0xF:
            # A filler inside the number: real modems pad short numbers with F; stop there.
            break
        out.append(_BCD_DIGITS[nibble])
    return "".join(out)


def _split_number(number: str, field: str) -> tuple[int, str]:
    """(type of address, digits) for a dialable number, or PduError naming ``field``."""
    if number.startswith("+"):
        toa, digits = TOA_INTERNATIONAL, number[1:]
    else:
        toa, digits = TOA_UNKNOWN, number
    if not digits or any(d not in "0123456789*#" for d in digits):
        raise PduError(f"{field}: {number!r} is not a phone number (digits, optional leading +)")
    if len(digits) > MAX_DIGITS:
        raise PduError(f"{field}: {number!r} has more than {MAX_DIGITS} digits")
    return toa, digits


def is_alphanumeric(address: str) -> bool:
    """True when ``address`` must be sent as an alphanumeric (TON 5) address."""
    body = address[1:] if address.startswith("+") else address
    return not body or any(ch not in "0123456789*#" for ch in body)


def encode_address(address: str, *, field: str, allow_alpha: bool = False) -> bytes:
    """A TP-OA/TP-DA/TP-RA field: digit count (or used semi-octets), type, value."""
    if allow_alpha and is_alphanumeric(address):
        if not address or not gsm7.is_gsm7(address):
            raise PduError(f"{field}: {address!r} is not a GSM 7-bit alphanumeric address")
        septets = gsm7.encode_text(address)
        if len(septets) > MAX_ALPHA_SEPTETS:
            raise PduError(f"{field}: {address!r} is longer than {MAX_ALPHA_SEPTETS} septets")
        semi_octets = (len(septets) * 7 + 3) // 4
        return bytes((semi_octets, TOA_ALPHANUMERIC)) + gsm7.pack(septets)
    toa, digits = _split_number(address, field)
    return bytes((len(digits), toa)) + _bcd(digits)


def decode_address(data: bytes, pos: int, *, field: str) -> tuple[str, int]:
    """Read a TP address at ``pos``; returns (address, position after it)."""
    if pos + 2 > len(data):
        raise PduError(f"{field}: truncated address")
    length, toa = data[pos], data[pos + 1]
    if length > MAX_DIGITS:
        raise PduError(f"{field}: address length {length} exceeds {MAX_DIGITS}")
    end = pos + 2 + (length + 1) // 2
    if end > len(data):
        raise PduError(f"{field}: truncated address")
    value = data[pos + 2 : end]
    ton = (toa >> 4) & 0x7
    if ton == TON_ALPHANUMERIC:
        septets = gsm7.unpack(value, (length * 4) // 7)
        return gsm7.decode_septets(septets), end
    digits = _unbcd(value, length)
    return ("+" + digits if ton == TON_INTERNATIONAL else digits), end


def encode_smsc(smsc: str | None) -> bytes:
    """The SMSC field before a TPDU: ``00`` (use the SIM's) or length, type, BCD digits."""
    if smsc is None:
        return b"\x00"
    toa, digits = _split_number(smsc, "smsc")
    body = bytes((toa,)) + _bcd(digits)
    return bytes((len(body),)) + body


def decode_smsc(data: bytes) -> tuple[str | None, int]:
    """Read the SMSC field at the start of ``data``; returns (number or None, TPDU offset)."""
    if not data:
        raise PduError("smsc: empty PDU")
    length = data[0]
    if length == 0:
        return None, 1
    if length > 1 + MAX_DIGITS // 2:
        raise PduError(f"smsc: length {length} is too long (PDU without SMSC field?)")
    if 1 + length > len(data):
        raise PduError("smsc: truncated SMSC address")
    toa = data[1]
    value = data[2 : 1 + length]
    digits = _unbcd(value, 2 * len(value))
    if (toa >> 4) & 0x7 == TON_INTERNATIONAL:
        digits = "+" + digits
    return (digits or None), 1 + length
