"""Phone numbers as the store compares them: digits only, national and international alike."""

from __future__ import annotations

import hashlib

# A report may name the recipient nationally ("612345678") while we sent to "+34612345678":
# equal digits, or one a suffix of the other with at least this many digits, is the same number.
_MIN_SUFFIX = 7


def digits(number: str) -> str:
    """Only the digits of ``number``."""
    return "".join(ch for ch in number if ch.isdigit())


def erased(number: str) -> str:
    """The one-way stand-in of an erased customer's number (kept only in the opt-out list,
    so an opt-out survives erasure): a SHA-256 of its digits."""
    return "erased:" + hashlib.sha256(digits(number).encode()).hexdigest()


def digits_match(a: str, b: str) -> bool:
    """Whether two numbers name the same line (see ``_MIN_SUFFIX``)."""
    da, db = digits(a), digits(b)
    if not da or not db:
        return False
    if da == db:
        return True
    short, long_ = sorted((da, db), key=len)
    return len(short) >= _MIN_SUFFIX and long_.endswith(short)
