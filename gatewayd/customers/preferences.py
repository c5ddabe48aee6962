"""A customer's message preferences: the kinds they want and how often.

Every flow send step names its kind; the engine sends it only when the customer's
preferences allow it (``essential``: transactional and shipping only) and, on ``reduced``,
under half the marketing caps. A customer with no stored choice gets every kind, ``normal``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gatewayd.core import ValidationError


class MessageKind(StrEnum):
    """What a flow message is about (each flow step names one)."""

    TRANSACTIONAL = "transactional"
    SHIPPING = "shipping"
    REVIEWS = "reviews"
    LOYALTY = "loyalty"
    REPLENISHMENT = "replenishment"
    MARKETING = "marketing"


class Frequency(StrEnum):
    """How often a customer wants to hear from the shop."""

    NORMAL = "normal"
    REDUCED = "reduced"  # half the marketing caps
    ESSENTIAL = "essential"  # transactional and shipping only


ESSENTIAL_KINDS = frozenset({MessageKind.TRANSACTIONAL, MessageKind.SHIPPING})


@dataclass(frozen=True)
class Preferences:
    """The opted-in kinds and the frequency choice."""

    kinds: frozenset[MessageKind] = frozenset(MessageKind)
    frequency: Frequency = Frequency.NORMAL

    def allows(self, kind: MessageKind) -> bool:
        """Whether a message of ``kind`` may go (essential kinds always may)."""
        if kind in ESSENTIAL_KINDS:
            return True
        return self.frequency is not Frequency.ESSENTIAL and kind in self.kinds

    def cap(self, value: int) -> int:
        """A marketing cap as it applies to this customer (``reduced``: half, at least 1)."""
        return max(1, value // 2) if self.frequency is Frequency.REDUCED else value

    def to_json(self) -> dict[str, Any]:
        """The API's ``Preferences``."""
        return {
            "kinds": sorted(k.value for k in self.kinds),
            "frequency": self.frequency.value,
        }


def parse_preferences(body: Any, current: Preferences) -> Preferences:
    """``body`` (the API's PUT, or the web form) over ``current``; ValidationError names the
    field at fault."""
    if not isinstance(body, dict):
        raise ValidationError("body", "expected a JSON object")
    unknown = set(body) - {"kinds", "frequency"}
    if unknown:
        raise ValidationError(sorted(unknown)[0], "unknown field")
    kinds = current.kinds
    if "kinds" in body:
        raw = body["kinds"]
        if not isinstance(raw, list):
            raise ValidationError("kinds", "expected a list of kinds")
        parsed: set[MessageKind] = set()
        for i, value in enumerate(raw):
            try:
                parsed.add(MessageKind(value))
            except ValueError:
                allowed = ", ".join(k.value for k in MessageKind)
                raise ValidationError(f"kinds[{i}]", f"must be one of {allowed}") from None
        kinds = frozenset(parsed | ESSENTIAL_KINDS)
    frequency = current.frequency
    if "frequency" in body:
        try:
            frequency = Frequency(body["frequency"])
        except ValueError:
            allowed = ", ".join(f.value for f in Frequency)
            raise ValidationError("frequency", f"must be one of {allowed}") from None
    return Preferences(kinds, frequency)


def preferences_from_row(kinds: str, frequency: str) -> Preferences:
    """Preferences as stored (comma-separated kinds); unknown values from an older version
    are ignored."""
    known = {k.value for k in MessageKind}
    parsed = frozenset(MessageKind(k) for k in kinds.split(",") if k in known)
    freq = Frequency(frequency) if frequency in {f.value for f in Frequency} else Frequency.NORMAL
    return Preferences(parsed | ESSENTIAL_KINDS, freq)
