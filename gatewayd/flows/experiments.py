"""Experiments: holdout and template variants assigned from a hash of (flow, customer).

The assignment is a pure function of the flow's name and the customer's id, so it is the
same after a restart and when the customer enrols again; no state is kept for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from gatewayd.flows.model import Flow, Segment, Send

HOLDOUT = "holdout"  # the variant name of the holdout arm in metrics


def unit(*parts: str) -> float:
    """A uniform number in [0, 1) from ``parts`` (SHA-256, first 8 bytes)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_holdout(flow: Flow, customer_id: str) -> bool:
    """Whether the customer is in the flow's holdout (tracked, sent nothing)."""
    return flow.holdout > 0 and unit(flow.name, customer_id, HOLDOUT) * 100.0 < flow.holdout


def pick_variant(flow: str, customer_id: str, variants: Sequence[tuple[str, float]]) -> str:
    """The customer's arm among weighted ``variants`` (template, weight)."""
    u = unit(flow, customer_id, "variant") * sum(w for _, w in variants)
    for template, weight in variants:
        if u < weight:
            return template
        u -= weight
    return variants[-1][0]  # float rounding at the very top of the range


def choose_template(
    flow: str, customer_id: str, action: Send, segments: frozenset[Segment]
) -> tuple[str, str | None]:
    """(template, variant) for a send step: an experiment's arm, else the template of the
    first listed segment the customer is in, else the step's template."""
    if action.variants:
        chosen = pick_variant(flow, customer_id, action.variants)
        return chosen, chosen
    for segment, template in action.by_segment:
        if segment in segments:
            return template, None
    return action.template, None
