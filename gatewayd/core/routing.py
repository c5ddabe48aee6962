"""Routing rules: a number's prefix names the pool that sends to it."""

from __future__ import annotations

from collections.abc import Sequence

from gatewayd.config.model import RoutingRule


def pool_for(number: str, rules: Sequence[RoutingRule]) -> str | None:
    """The pool of the longest matching prefix, or ``None`` (any modem)."""
    best: RoutingRule | None = None
    for rule in rules:
        if number.startswith(rule.prefix) and (best is None or len(rule.prefix) > len(best.prefix)):
            best = rule
    return best.pool if best is not None else None
