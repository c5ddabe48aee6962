"""What conditions test: a customer's history and the order at hand, as plain facts."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gatewayd.flows.model import Condition, Segment
from gatewayd.flows.templates import language_of
from gatewayd.store.flows_base import CustomerRecord, OrderRecord


@dataclass(frozen=True)
class Facts:
    """A customer, their (current) order and their order history."""

    customer: CustomerRecord
    order: OrderRecord | None
    orders: tuple[OrderRecord, ...]
    high_value_threshold: Decimal

    @property
    def items(self) -> list[dict[str, Any]]:
        """The items of the order at hand (none without an order)."""
        items = self.order.data.get("items", []) if self.order else []
        return [i for i in items if isinstance(i, dict)]

    @property
    def segments(self) -> frozenset[Segment]:
        """The segments the customer is in now."""
        kept = [o for o in self.orders if o.status != "cancelled"]
        found = {Segment.RETURNING if len(kept) > 1 else Segment.FIRST_TIME}
        if sum((o.total for o in kept), Decimal(0)) > self.high_value_threshold:
            found.add(Segment.HIGH_VALUE)
        return frozenset(found)

    def usage_days(self) -> int | None:
        """The shortest ``usage_days`` among the order's items (None when none is set)."""
        days = [int(i["usage_days"]) for i in self.items if "usage_days" in i]
        return min(days) if days else None

    def holds(self, cond: Condition) -> bool:
        """Whether the history tests of ``cond`` hold (clicks and replies are the engine's)."""
        items = self.items
        delivery = self.order.data.get("delivery_method") if self.order else None
        checks = [
            not cond.segments or set(cond.segments) <= self.segments,
            not cond.kinds or any(i.get("kind") in cond.kinds for i in items),
            not cond.categories or any(i.get("category") in cond.categories for i in items),
            not cond.locales or language_of(self.customer.locale, "") in cond.locales,
            not cond.countries or (self.customer.country or "") in cond.countries,
            not cond.delivery_methods or delivery in cond.delivery_methods,
            cond.consumable is None or (self.usage_days() is not None) == cond.consumable,
        ]
        return all(checks)
