"""Per-SIM limits as the network sees them: checked on the simulator's own send log."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from drivers.sim import SentRecord


def most_in_any_window(records: Iterable[SentRecord], seconds: float) -> int:
    """The most parts one SIM sent in any window of ``seconds`` (half-open) of its log."""
    by_sim: dict[str, list[datetime]] = {}
    for r in records:
        by_sim.setdefault(r.iccid, []).append(r.time)
    most = 0
    for times in by_sim.values():
        times.sort()
        j = 0
        for i, start in enumerate(times):
            j = max(j, i)
            while j < len(times) and (times[j] - start).total_seconds() < seconds:
                j += 1
            most = max(most, j - i)
    return most
