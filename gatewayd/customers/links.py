"""Signed, expiring per-customer links to the preferences page.

A token is ``<payload>.<mac>``: the payload is the customer id and the expiry (Unix
seconds), base64url; the MAC is HMAC-SHA256 over it with the install's secret, truncated to
128 bits. Nothing is stored per link; changing the secret revokes every link.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime

PAGE_LINK_DAYS = 30.0  # a preferences link in a message works this long


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest()[:16])


def sign(secret: bytes, customer_id: str, expires: datetime) -> str:
    """A token for ``customer_id`` valid until ``expires``."""
    payload = _b64(f"{int(expires.timestamp())}:{customer_id}".encode())
    return f"{payload}.{_mac(secret, payload)}"


def verify(secret: bytes, token: str, now: datetime) -> str | None:
    """The customer id of a genuine, unexpired token; None for anything else."""
    payload, _, mac = token.partition(".")
    if not payload or not mac or not hmac.compare_digest(mac, _mac(secret, payload)):
        return None
    try:
        expiry, _, customer_id = _unb64(payload).decode().partition(":")
        expires = datetime.fromtimestamp(int(expiry), tz=UTC)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        return None
    if not customer_id or expires <= now:
        return None
    return customer_id
