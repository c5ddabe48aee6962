"""Login sessions of the status page: opaque random ids, held in memory.

The cookie carries a random id, never the API token; the daemon keeps only the id's SHA-256,
when it expires, and which token it was opened with. A session ends at logout, after its
lifetime, at a restart, or when its token is no longer configured (removed on SIGHUP).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from drivers.clock import Clock

SESSION_LIFETIME = timedelta(hours=12)
# Enough for every admin's browsers; the oldest session goes when a new one would exceed it.
MAX_SESSIONS = 1000


@dataclass(frozen=True)
class Session:
    """One logged-in browser."""

    expires_at: datetime
    token_digest: bytes


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class Sessions:
    """The open sessions (see the module docstring)."""

    def __init__(self, clock: Clock, *, lifetime: timedelta = SESSION_LIFETIME) -> None:
        self._clock = clock
        self.lifetime = lifetime
        self._open: dict[bytes, Session] = {}

    def __len__(self) -> int:
        return len(self._open)

    def open(self, token: bytes) -> str:
        """A new session for a browser that presented ``token`` (checked by the caller)."""
        now = self._clock.now()
        self._open = {k: s for k, s in self._open.items() if s.expires_at > now}
        while len(self._open) >= MAX_SESSIONS:
            del self._open[next(iter(self._open))]
        session_id = secrets.token_urlsafe(32)
        self._open[_digest(session_id.encode())] = Session(now + self.lifetime, _digest(token))
        return session_id

    def valid(self, session_id: str | None, tokens: tuple[bytes, ...]) -> bool:
        """Whether ``session_id`` is open, unexpired and its token still configured."""
        if not session_id:
            return False
        key = _digest(session_id.encode())
        session = self._open.get(key)
        if session is None:
            return False
        if session.expires_at <= self._clock.now() or session.token_digest not in {
            _digest(t) for t in tokens
        }:
            del self._open[key]
            return False
        return True

    def close(self, session_id: str | None) -> None:
        """End ``session_id`` (logout); unknown ids are ignored."""
        if session_id:
            self._open.pop(_digest(session_id.encode()), None)
