"""When a flow message may go: quiet hours in the recipient's time, caps, minimum gap.

Quiet hours resolve to a ``send_at`` when the message is queued (DESIGN: time). The zones
are the customer's own when the event named one, else every zone phonenumbers gives for the
number: where a country spans several (+34: Europe/Madrid and Atlantic/Canary) a time is
allowed only when it is allowed in all of them, the intersection of the windows.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

import phonenumbers
from phonenumbers import timezone as pn_timezone

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
# Each pass moves the time forward past one obstacle; real configurations settle in a few.
_MAX_PASSES = 64


@dataclass(frozen=True)
class QuietHours:
    """Local times [start, end) in which a message waits; start > end spans midnight."""

    start: time
    end: time

    @classmethod
    def parse(cls, start: str, end: str) -> QuietHours:
        """From ``HH:MM`` strings (validated by the config loader)."""
        return cls(time.fromisoformat(start), time.fromisoformat(end))

    def quiet(self, local: time) -> bool:
        """Whether ``local`` falls in quiet hours."""
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_allowed(self, moment: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
        """``moment`` if allowed in ``zone``, else when quiet hours there end (UTC-aware)."""
        local = moment.astimezone(zone)
        if not self.quiet(local.time().replace(tzinfo=None)):
            return moment
        end_day = local.date()
        if self.start > self.end and local.time().replace(tzinfo=None) >= self.start:
            end_day += DAY
        end = datetime.combine(end_day, self.end, tzinfo=zone)
        return end.astimezone(moment.tzinfo)


def zones_for(timezone: str | None, phone: str, default: str) -> list[zoneinfo.ZoneInfo]:
    """The recipient's zones: the given one, else the number's country's, else ``default``."""
    names: Sequence[str] = ()
    if timezone:
        names = (timezone,)
    else:
        try:
            found = pn_timezone.time_zones_for_number(phonenumbers.parse(phone))
        except phonenumbers.NumberParseException:
            found = ()
        names = [z for z in found if z != "Etc/Unknown"]
    zones = []
    for name in names:
        try:
            zones.append(zoneinfo.ZoneInfo(name))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
    return zones or [zoneinfo.ZoneInfo(default)]


@dataclass(frozen=True)
class Caps:
    """Per-customer limits: marketing per rolling day and week, and a gap between any two."""

    per_day: int
    per_week: int
    min_gap: timedelta


def resolve_send_at(
    moment: datetime,
    *,
    quiet: QuietHours | None,
    zones: Sequence[zoneinfo.ZoneInfo],
    caps: Caps,
    marketing: bool,
    marketing_times: Sequence[datetime],
    all_times: Sequence[datetime],
) -> datetime:
    """The earliest time from ``moment`` on that every rule allows.

    ``marketing_times`` / ``all_times`` are when this customer's earlier flow messages go
    (``send_at``, including ones still queued). Raises ``ValueError`` when the zones'
    allowed windows never meet (quiet hours longer than the zones' offsets allow).
    """
    t = moment
    for _ in range(_MAX_PASSES):
        start = t
        if quiet is not None:
            for zone in zones:
                t = quiet.next_allowed(t, zone)
        for other in all_times:
            if abs(t - other) < caps.min_gap:
                t = other + caps.min_gap
        if marketing:
            t = _capped(t, marketing_times, DAY, caps.per_day)
            t = _capped(t, marketing_times, WEEK, caps.per_week)
        if t == start:
            return t
    raise ValueError("no time satisfies quiet hours in every zone of the recipient")


def _capped(t: datetime, times: Sequence[datetime], window: timedelta, limit: int) -> datetime:
    # Rolling window: no span shorter than `window` may hold more than `limit` sends, the
    # new one included. Earlier sends may lie ahead of `t` (deferred by quiet hours), so
    # look both ways; on a conflict move past the first send of the crowded group.
    while True:
        near = sorted(x for x in times if abs(x - t) < window)
        for i in range(len(near) - limit + 1):
            group = near[i : i + limit]
            if max(group[-1], t) - min(group[0], t) < window:
                t = group[0] + window
                break
        else:
            return t
