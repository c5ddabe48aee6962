"""Flow metrics: per flow and per send step, counts since a time and rates over sends.

A step with an experiment (template variants, or a flow holdout) also reports each arm:
its counts, each rate with a 95 % Wilson interval, revenue, and the difference to the
control (the holdout when there is one, else the first variant) with a 95 % interval and
the two-proportion z-test. Against a holdout only conversion compares: it sent nothing to
click or reply to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from gatewayd.core.views import iso
from gatewayd.flows.experiments import HOLDOUT
from gatewayd.store.flows_base import StepCounts

# Counts whose rate is reported (each over the messages sent by the step).
RATED = ("delivered", "failed", "clicked", "replied", "opted_out", "converted")
COMPARED = ("clicked", "replied", "opted_out", "converted")  # arm against control
Z95 = 1.959963984540054  # the standard normal's 97.5th percentile
SEND_ARM = "send"  # the arm name of a step without variants in a flow with a holdout


def wilson(successes: int, n: int) -> tuple[float, float] | None:
    """The 95 % Wilson score interval of a proportion (None when ``n`` is 0)."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def compare(x1: int, n1: int, x0: int, n0: int) -> dict[str, Any] | None:
    """Arm (x1 of n1) against control (x0 of n0): the difference of proportions with its
    95 % interval (unpooled) and the two-proportion z-test (pooled); None without data."""
    if n1 <= 0 or n0 <= 0:
        return None
    p1, p0 = x1 / n1, x0 / n0
    diff = p1 - p0
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    pooled = (x1 + x0) / (n1 + n0)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    z = diff / se_pooled if se_pooled > 0 else 0.0
    p_value = math.erfc(abs(z) / math.sqrt(2))
    return {
        "diff": round(diff, 4),
        "ci95": [round(diff - Z95 * se, 4), round(diff + Z95 * se, 4)],
        "z": round(z, 3),
        "p_value": round(p_value, 4),
    }


@dataclass(frozen=True)
class ArmMetrics:
    """One arm of an experiment step."""

    name: str
    counts: StepCounts

    @property
    def is_holdout(self) -> bool:
        """The control that was sent nothing."""
        return self.counts.variant == HOLDOUT

    @property
    def n(self) -> int:
        """Its units: messages sent, or holdout enrolments that reached the step."""
        return self.counts.holdout if self.is_holdout else self.counts.sent

    def to_json(self, control: ArmMetrics | None) -> dict[str, Any]:
        """Counts, rates with Wilson intervals, revenue, and the comparison to ``control``."""
        c = self.counts
        out: dict[str, Any] = {"variant": self.name, "n": self.n, "sent": c.sent}
        if self.is_holdout:
            out["holdout"] = c.holdout
        for name in RATED:
            out[name] = getattr(c, name)
        out["revenue"] = str(c.revenue)
        out["rates"] = {
            name: (round(getattr(c, name) / self.n, 4) if self.n else None) for name in RATED
        }
        out["ci95"] = {name: wilson(getattr(c, name), self.n) for name in RATED}
        if control is not None and control is not self:
            names = ("converted",) if control.is_holdout else COMPARED
            out["vs_control"] = {
                name: compare(getattr(c, name), self.n, getattr(control.counts, name), control.n)
                for name in names
            }
        return out


@dataclass(frozen=True)
class StepMetrics:
    """One send step: counts and rates (and its arms when it runs an experiment)."""

    counts: StepCounts
    arms: tuple[ArmMetrics, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Counts, and each rate as a fraction of ``sent`` (None before any send)."""
        c = self.counts
        out: dict[str, Any] = {"step": c.step, "sent": c.sent, "skipped": c.skipped}
        for name in RATED:
            out[name] = getattr(c, name)
        out["answered"] = c.answered  # survey answers (0 for a step that asks nothing)
        out["revenue"] = str(c.revenue)
        out["rates"] = {
            name: (round(getattr(c, name) / c.sent, 4) if c.sent else None) for name in RATED
        }
        if self.arms:
            control = next((a for a in self.arms if a.is_holdout), self.arms[0])
            out["control"] = control.name
            out["variants"] = [a.to_json(control) for a in self.arms]
        return out


def _merge(rows: Sequence[StepCounts]) -> StepCounts:
    """The step's totals over its arms (holdout units are not sends)."""
    first = rows[0]
    values: dict[str, Any] = {"flow": first.flow, "step": first.step}
    for f in fields(StepCounts):
        if f.name in ("flow", "step", "variant"):
            continue
        if f.name == "revenue":
            values[f.name] = sum((r.revenue for r in rows), Decimal(0))
        else:
            values[f.name] = sum(getattr(r, f.name) for r in rows)
    return StepCounts(**values)


def _step(rows: Sequence[StepCounts]) -> StepMetrics:
    if len(rows) == 1 and rows[0].variant is None:
        return StepMetrics(rows[0])
    arms = tuple(ArmMetrics(r.variant or SEND_ARM, r) for r in rows)
    # The holdout first: it is the control.
    arms = tuple(sorted(arms, key=lambda a: not a.is_holdout))
    return StepMetrics(_merge(rows), arms)


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
    """Group the store's counts per flow (configured flows first, in their order) and per
    step (its arms together, in the store's order)."""
    names = list(flow_names) + sorted(({*enrolled} | {s.flow for s in steps}) - set(flow_names))
    out: dict[str, tuple[int, tuple[StepMetrics, ...]]] = {}
    for name in names:
        grouped: dict[str, list[StepCounts]] = {}
        for s in steps:
            if s.flow == name:
                grouped.setdefault(s.step, []).append(s)
        out[name] = (enrolled.get(name, 0), tuple(_step(rows) for rows in grouped.values()))
    return FlowMetrics(since, out)
