"""Validating posted events into customers and orders."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gatewayd.core import ValidationError
from gatewayd.flows import parse_event
from tests.gatewayd.flows.harness import CAPSULES, event

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_a_valid_order_event() -> None:
    body = event("order.placed", at=NOW, phone="600 000 001", items=[CAPSULES], total="19.90")
    parsed = parse_event(body, region="ES", now=NOW)
    assert parsed.customer is not None
    assert parsed.customer.phone == "+34600000001"
    assert parsed.customer.country == "ES"
    assert parsed.customer.consent_marketing is True
    assert parsed.order is not None
    assert parsed.order.total == Decimal("19.90")
    assert parsed.order.status == "placed"
    assert parsed.order.data["items"][0]["usage_days"] == 30
    assert parsed.stored.occurred_at == NOW


def test_the_address_country_wins_over_the_numbers() -> None:
    body = event("customer.updated", at=NOW, with_order=False)
    body["customer"]["address"] = {"country": "pt", "city": "Porto"}
    parsed = parse_event(body, region="ES", now=NOW)
    assert parsed.customer is not None
    assert parsed.customer.country == "PT"
    body["customer"]["address"] = {"country": "Portugal"}
    with pytest.raises(ValidationError) as info:
        parse_event(body, region="ES", now=NOW)
    assert info.value.field == "customer.address.country"


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("type", "Order Placed", "type"),
        ("event_id", "", "event_id"),
        ("occurred_at", "2026-01-05T09:00:00", "occurred_at"),
        ("data", [], "data"),
    ],
)
def test_top_level_errors(key: str, value: object, field: str) -> None:
    body = event("order.placed", at=NOW)
    body[key] = value
    with pytest.raises(ValidationError) as info:
        parse_event(body, region="ES", now=NOW)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({**CAPSULES, "qty": 0}, "order.items[0].qty"),
        ({**CAPSULES, "price": "free"}, "order.items[0].price"),
        ({**CAPSULES, "usage_days": True}, "order.items[0].usage_days"),
        ({**CAPSULES, "sku": ""}, "order.items[0].sku"),
        ("coffee", "order.items[0]"),
    ],
)
def test_item_errors(item: object, field: str) -> None:
    body = event("order.placed", at=NOW)
    body["order"]["items"] = [item]
    with pytest.raises(ValidationError) as info:
        parse_event(body, region="ES", now=NOW)
    assert info.value.field == field


def test_a_posted_click_needs_no_customer() -> None:
    body = {"type": "link.clicked", "event_id": "k-1", "occurred_at": "2026-01-05T09:00:00Z"}
    parsed = parse_event(body, region="ES", now=NOW)
    assert parsed.customer is None
    assert parsed.stored.customer_id is None
