"""Flow metrics: per flow and per send step, counts since a time and rates over sends."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gatewayd.core.views import iso
from gatewayd.store.flows_base import StepCounts

# Counts whose rate is reported (each over the messages sent by the step).
RATED = ("delivered", "failed", "clicked", "replied", "opted_out", "converted")


@dataclass(frozen=True)
class StepMetrics:
    """One send step: counts and rates."""

    counts: StepCounts

    def to_json(self) -> dict[str, Any]:
        """Counts, and each rate as a fraction of ``sent`` (None before any send)."""
        c = self.counts
        out: dict[str, Any] = {"step": c.step, "sent": c.sent, "skipped": c.skipped}
        for name in RATED:
            out[name] = getattr(c, name)
        out["rates"] = {
            name: (round(getattr(c, name) / c.sent, 4) if c.sent else None) for name in RATED
        }
        return out


@dataclass(frozen=True)
class FlowMetrics:
    """Every flow's enrolments and steps since ``since``."""

    since: datetime
    flows: dict[str, tuple[int, tuple[StepMetrics, ...]]]

    def to_json(self) -> dict[str, Any]:
        """The API's ``FlowMetrics``."""
        return {
            "since": iso(self.since),
            "flows": [
                {
                    "flow": name,
                    "enrolled": enrolled,
                    "sent": sum(s.counts.sent for s in steps),
                    "steps": [s.to_json() for s in steps],
                }
                for name, (enrolled, steps) in self.flows.items()
            ],
        }


def build_metrics(
    since: datetime,
    flow_names: Sequence[str],
    enrolled: dict[str, int],
    steps: Sequence[StepCounts],
) -> FlowMetrics:
    """Group the store's counts per flow, configured flows first, in their order."""
    names = list(flow_names) + sorted(({*enrolled} | {s.flow for s in steps}) - set(flow_names))
    return FlowMetrics(
        since,
        {
            name: (
                enrolled.get(name, 0),
                tuple(StepMetrics(s) for s in steps if s.flow == name),
            )
            for name in names
        },
    )
