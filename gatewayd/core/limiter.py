"""Per-SIM throughput limits in sliding windows, counted in SMS parts.

A part counts when its Ctrl-Z is written (the worker records it just before ``send_pdu``),
because the operator counts what left the SIM. A message reserves all its parts at once: it
starts only when every window has room for all of them, so no 60 s (3600 s, 86400 s) window
ever holds more than its maximum, whatever the part count. One worker per SIM sends
sequentially, so the parts of the message being sent are the only sends a later reservation
must wait for. The log is loaded from the store at start, so limits hold across restarts.
"""

from __future__ import annotations

import bisect
import math
import random
from datetime import UTC, datetime

from gatewayd.config.model import Limits
from gatewayd.core.views import LimitHeadroom

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


class Limiter:
    """The send log and limits of one SIM."""

    def __init__(
        self,
        limits: Limits,
        history: list[datetime] | None = None,
        *,
        rng: random.Random | None = None,
        now: datetime | None = None,
    ) -> None:
        self._limits = limits
        self._rng = rng or random.Random()
        self._sends: list[float] = sorted(t.timestamp() for t in history or [])
        self._gap_until = 0.0
        self._next_gap = limits.min_gap_seconds
        # The gap runs from the last send that happened; a count held in the future (a part
        # whose outcome is unknown, see hold) stands for a send that may come, not one seen.
        seen = self._sends
        if now is not None:
            seen = self._sends[: bisect.bisect_right(self._sends, now.timestamp())]
        if seen:
            self._gap_until = seen[-1] + limits.min_gap_seconds

    @property
    def limits(self) -> Limits:
        """The limits in force."""
        return self._limits

    def reconfigure(self, limits: Limits) -> None:
        """Apply new limits (SIGHUP); the log stays."""
        self._limits = limits

    def _windows(self) -> list[tuple[float, int]]:
        lim = self._limits
        pairs = ((MINUTE, lim.max_per_minute), (HOUR, lim.max_per_hour), (DAY, lim.max_per_day))
        return [(w, m) for w, m in pairs if m is not None]

    def capacity(self) -> int | None:
        """The most parts one message may have to ever fit (``None``: unlimited)."""
        windows = self._windows()
        return min(m for _, m in windows) if windows else None

    def earliest(self, parts: int, now: datetime, *, reserve: float = 0.0) -> datetime | None:
        """When ``parts`` parts can all be reserved (``now`` or later); ``None``: never.

        ``reserve`` is the share of each window this message may not use (kept for otp and
        alert messages); a message bigger than what is left waits for an empty window.
        """
        t = now.timestamp()
        for window, maximum in self._windows():
            usable = max(math.floor(maximum * (1.0 - reserve)), min(parts, maximum))
            room = usable - parts
            if room < 0:
                return None
            # Sends in (T - window, T] must number at most `room`: the (room+1)-th most
            # recent one has to leave the window first.
            start = bisect.bisect_right(self._sends, t - window)
            inside = len(self._sends) - start
            if inside > room:
                t = max(t, self._sends[len(self._sends) - room - 1] + window)
        t = max(t, self._gap_until)
        return datetime.fromtimestamp(t, tz=UTC)

    def gap_ready(self) -> datetime:
        """When the next part may go under the minimum gap (with its jitter)."""
        return datetime.fromtimestamp(self._gap_until, tz=UTC)

    def record(self, at: datetime) -> None:
        """Count a part whose Ctrl-Z is being written at ``at``."""
        ts = at.timestamp()
        bisect.insort(self._sends, ts)
        self._next_gap = self._limits.min_gap_seconds + self._rng.uniform(
            0.0, self._limits.gap_jitter_seconds
        )
        self._gap_until = max(self._gap_until, ts + self._next_gap)
        # Forget what no window can see any more.
        cut = bisect.bisect_right(self._sends, ts - DAY)
        if cut:
            del self._sends[:cut]

    def settle(self, counted: datetime, done: datetime) -> None:
        """The part counted at ``counted`` got its answer at ``done``: count it from then.

        The SMS left the modem somewhere in between (after the prompt, before ``+CMGS``), so
        measuring later windows and the gap from ``done`` keeps them whole as the network
        sees them, however long the modem took.
        """
        c, d = counted.timestamp(), done.timestamp()
        i = bisect.bisect_left(self._sends, c)
        if d <= c or i == len(self._sends) or self._sends[i] != c:
            return
        del self._sends[i]
        bisect.insort(self._sends, d)
        self._gap_until = max(self._gap_until, d + self._next_gap)

    def hold(self, counted: datetime, until: datetime) -> None:
        """Keep the part counted at ``counted`` in the windows as if it left at ``until``.

        For a part whose outcome is unknown: it may still leave the modem up to ``until``,
        and a count must never be earlier than its send. The gap is left alone (it runs from
        the answer, as ``settle`` set it).
        """
        c, u = counted.timestamp(), until.timestamp()
        i = bisect.bisect_left(self._sends, c)
        if u <= c or i == len(self._sends) or self._sends[i] != c:
            return
        del self._sends[i]
        bisect.insort(self._sends, u)

    def headroom(self, now: datetime) -> LimitHeadroom:
        """How many more parts each window allows now."""
        t = now.timestamp()
        lim = self._limits

        def left(window: float, maximum: int | None) -> int | None:
            if maximum is None:
                return None
            inside = len(self._sends) - bisect.bisect_right(self._sends, t - window)
            return max(0, maximum - inside)

        return LimitHeadroom(
            left(MINUTE, lim.max_per_minute),
            left(HOUR, lim.max_per_hour),
            left(DAY, lim.max_per_day),
        )
