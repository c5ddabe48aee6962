"""TP-SCTS / TP-DT timestamps and the relative TP-VP (TS 23.040 9.2.3.11, 9.2.3.12)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from drivers.pdu.errors import PduError

TIMESTAMP_OCTETS = 7
_QUARTER = 15 * 60


def _swap(value: int) -> int:
    """Semi-octet: the tens digit sits in the low nibble, the units in the high one."""
    return (value % 10) << 4 | (value // 10)


def encode_timestamp(moment: datetime) -> bytes:
    """Seven semi-octet octets: local date and time plus the offset in quarter hours."""
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("timestamp must be timezone-aware")
    seconds = int(offset.total_seconds())
    if seconds % _QUARTER:
        raise ValueError("timestamp offset must be a whole number of quarter hours")
    quarters = abs(seconds) // _QUARTER
    if quarters > 79:
        raise ValueError("timestamp offset is out of range")
    tz = _swap(quarters) | (0x08 if seconds < 0 else 0)
    fields = (
        moment.year % 100,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
    )
    return bytes(_swap(v) for v in fields) + bytes((tz,))


def _digits(octet: int, field: str) -> int:
    tens, units = octet & 0xF, octet >> 4
    if tens > 9 or units > 9:
        raise PduError(f"{field}: octet {octet:02X} is not a semi-octet decimal")
    return tens * 10 + units


def decode_timestamp(data: bytes, pos: int, *, field: str) -> datetime:
    """The timezone-aware datetime in ``data[pos:pos + 7]``.

    The year has two digits: 80-99 read as 19yy (SMS predates 2000, old tutorials and SIMs
    carry such stamps), the rest as 20yy.
    """
    raw = data[pos : pos + TIMESTAMP_OCTETS]
    if len(raw) < TIMESTAMP_OCTETS:
        raise PduError(f"{field}: truncated timestamp")
    year, month, day, hour, minute, second = (_digits(o, field) for o in raw[:6])
    tz = raw[6]
    # Bit 3 of the octet (the tens nibble) is the sign: negative offsets exist (the Americas).
    quarters = _digits(tz & 0xF7, field)
    sign = -1 if tz & 0x08 else 1
    try:
        zone = timezone(timedelta(minutes=sign * quarters * 15))
        century = 1900 if year >= 80 else 2000
        return datetime(century + year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError as exc:
        raise PduError(f"{field}: invalid date or time ({exc})") from None


def vp_minutes_to_octet(minutes: int) -> int:
    """Relative TP-VP for at least ``minutes`` (rounded up to the next step, capped at 63 weeks)."""
    if minutes < 1:
        raise ValueError("validity period must be at least one minute")
    if minutes <= 12 * 60:
        return max(0, -(-minutes // 5) - 1)  # (VP + 1) * 5 minutes
    if minutes <= 24 * 60:
        return 143 + -(-(minutes - 12 * 60) // 30)  # 12 h + (VP - 143) * 30 minutes
    day = 24 * 60
    if minutes <= 30 * day:
        return 166 + -(-minutes // day)  # (VP - 166) days
    return min(255, 192 + -(-minutes // (7 * day)))  # (VP - 192) weeks


def vp_octet_to_minutes(octet: int) -> int:
    """Minutes that a relative TP-VP octet stands for."""
    if octet <= 143:
        return (octet + 1) * 5
    if octet <= 167:
        return 12 * 60 + (octet - 143) * 30
    if octet <= 196:
        return (octet - 166) * 24 * 60
    return (octet - 192) * 7 * 24 * 60
