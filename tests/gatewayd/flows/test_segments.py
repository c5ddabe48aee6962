"""Segments and conditions from a customer's history and the order at hand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from gatewayd.flows.model import Condition, Segment
from gatewayd.flows.segments import Facts
from gatewayd.store.flows_base import CustomerRecord, OrderRecord

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CUSTOMER = CustomerRecord(
    "c-1", "+34600000001", "Ana", "es_ES", None, "ES", True, True, "checkout", AT
)


def order(oid: str, total: str, *items: dict[str, object], status: str = "placed") -> OrderRecord:
    data = {"id": oid, "items": list(items), "delivery_method": "pickup"}
    return OrderRecord(oid, "c-1", AT, status, Decimal(total), "EUR", data)


def facts(current: OrderRecord, *history: OrderRecord) -> Facts:
    return Facts(CUSTOMER, current, (*history, current), Decimal("300"))


BEANS: dict[str, object] = {
    "name": "Cafe",
    "kind": "physical",
    "category": "coffee",
    "usage_days": 20,
}
APP: dict[str, object] = {"name": "App", "kind": "digital", "category": "software"}


def test_first_time_returning_and_high_value() -> None:
    first = facts(order("1", "50", BEANS))
    assert first.segments == {Segment.FIRST_TIME}
    # A cancelled earlier order does not make a returning customer.
    cancelled = facts(order("2", "50", BEANS), order("1", "500", BEANS, status="cancelled"))
    assert cancelled.segments == {Segment.FIRST_TIME}
    big = facts(order("2", "200", BEANS), order("1", "150", APP))
    assert big.segments == {Segment.RETURNING, Segment.HIGH_VALUE}


def test_conditions_on_the_order_and_the_customer() -> None:
    f = facts(order("1", "50", BEANS, APP))
    assert f.holds(Condition())
    assert f.holds(Condition(kinds=("digital",), categories=("coffee",), consumable=True))
    assert f.holds(Condition(locales=("es",), countries=("ES",), delivery_methods=("pickup",)))
    assert not f.holds(Condition(segments=(Segment.RETURNING,)))
    assert not f.holds(Condition(locales=("en",)))
    assert not f.holds(Condition(countries=("MX",)))
    assert not f.holds(Condition(delivery_methods=("home",)))
    assert not facts(order("1", "9", APP)).holds(Condition(consumable=True))
    assert f.usage_days() == 20
