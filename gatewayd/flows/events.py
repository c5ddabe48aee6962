"""Order and customer events as the shop posts them, validated into typed values.

Every refusal is a :class:`~gatewayd.core.ValidationError` naming the field as a dotted
path (``order.items[1].kind``): the API answers it with 422 in its one error shape.
The engine knows ``order.placed``, ``order.shipped``, ``order.out_for_delivery``,
``order.delivered``, ``order.cancelled`` (which need an order), ``customer.updated`` and
``link.clicked``; other types are valid too: they are stored and start nothing.
"""

from __future__ import annotations

import json
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import phonenumbers

from gatewayd.core import ValidationError
from gatewayd.core.submit import normalise_number
from gatewayd.store.flows_base import CustomerRecord, NewEvent, OrderRecord

KINDS = ("physical", "digital")
# The order events and the status they give the order.
_ORDER_STATUS = {
    "order.placed": "placed",
    "order.shipped": "shipped",
    "order.out_for_delivery": "out_for_delivery",
    "order.delivered": "delivered",
    "order.cancelled": "cancelled",
}
_MAX_TEXT = 500


@dataclass(frozen=True)
class Event:
    """One validated event: what is stored (its ``data`` stays in the payload), and the
    customer and order it carries."""

    stored: NewEvent
    customer: CustomerRecord | None
    order: OrderRecord | None


def parse_event(body: Any, *, region: str, now: datetime) -> Event:
    """Validate a ``POST /v1/events`` body (raises ``ValidationError`` naming the field)."""
    if not isinstance(body, dict):
        raise ValidationError("body", "expected a JSON object")
    unknown = set(body) - {"type", "event_id", "occurred_at", "customer", "order", "data"}
    if unknown:
        raise ValidationError(sorted(unknown)[0], "unknown field")
    etype = _text(body.get("type"), "type", pattern_ok=_is_type)
    event_id = _text(body.get("event_id"), "event_id")
    occurred = _time(body.get("occurred_at"), "occurred_at")
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise ValidationError("data", "expected an object")
    customer = None
    if "customer" in body:
        customer = _customer(body["customer"], region)
    elif etype != "link.clicked":
        raise ValidationError("customer", "required")
    order = None
    if "order" in body:
        if customer is None:
            raise ValidationError("customer", "required with an order")
        order = _order(body["order"], customer.id, occurred, _ORDER_STATUS.get(etype, "open"))
    elif etype in _ORDER_STATUS:
        raise ValidationError("order", f"required for {etype}")
    stored = NewEvent(
        event_id=event_id,
        type=etype,
        customer_id=customer.id if customer else None,
        order_id=order.id if order else None,
        occurred_at=occurred,
        received_at=now,
        payload=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
    )
    return Event(stored, customer, order)


def _is_type(value: str) -> bool:
    return all(part and part.replace("_", "").isalnum() for part in value.split("."))


def _text(value: Any, field: str, *, pattern_ok: Any = None, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "expected a non-empty string")
    if len(value) > _MAX_TEXT:
        raise ValidationError(field, f"at most {_MAX_TEXT} characters")
    if pattern_ok is not None and not pattern_ok(value):
        raise ValidationError(field, "expected dotted words, e.g. 'order.placed'")
    return value.strip()


def _optional(obj: dict[str, Any], key: str, field: str) -> str | None:
    if obj.get(key) is None:
        return None
    return _text(obj[key], field)


def _time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise ValidationError(
            field, "expected an ISO 8601 time with a zone, e.g. 2026-01-05T09:00Z"
        )
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationError(field, f"not an ISO 8601 time: {value!r}") from exc
    if moment.tzinfo is None:
        raise ValidationError(field, "needs a time zone (Z or +hh:mm)")
    return moment


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(field, "expected true or false")
    return value


def _customer(value: Any, region: str) -> CustomerRecord:
    if not isinstance(value, dict):
        raise ValidationError("customer", "expected an object")
    cid = _text(value.get("id"), "customer.id")
    phone = normalise_number(str(value.get("phone") or ""), region, field="customer.phone")
    tz = _optional(value, "timezone", "customer.timezone")
    if tz is not None:
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError("customer.timezone", f"unknown time zone {tz!r}") from exc
    consent = value.get("consent")
    if not isinstance(consent, dict):
        raise ValidationError("customer.consent", "expected an object")
    at = consent.get("at")
    # The shipping address's country, when given, wins over the number's.
    address = value.get("address")
    if address is not None and not isinstance(address, dict):
        raise ValidationError("customer.address", "expected an object")
    country = (address or {}).get("country", value.get("country"))
    if country is not None and (not isinstance(country, str) or len(country) != 2):
        field = (
            "customer.address.country" if address and "country" in address else "customer.country"
        )
        raise ValidationError(field, "expected an ISO 3166 code, e.g. 'ES'")
    return CustomerRecord(
        id=cid,
        phone=phone,
        name=_optional(value, "name", "customer.name"),
        locale=_optional(value, "locale", "customer.locale"),
        timezone=tz,
        country=(country or _region(phone)).upper(),
        consent_transactional=_bool(consent.get("transactional"), "customer.consent.transactional"),
        consent_marketing=_bool(consent.get("marketing"), "customer.consent.marketing"),
        consent_source=_optional(consent, "source", "customer.consent.source"),
        consent_at=None if at is None else _time(at, "customer.consent.at"),
    )


def _region(phone: str) -> str:
    return phonenumbers.region_code_for_number(phonenumbers.parse(phone)) or ""


def _money(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValidationError(field, "expected a number")
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValidationError(field, "expected a number") from exc
    if not amount.is_finite() or amount < 0:
        raise ValidationError(field, "expected a number of at least 0")
    return amount


def _order(value: Any, customer_id: str, occurred: datetime, status: str) -> OrderRecord:
    if not isinstance(value, dict):
        raise ValidationError("order", "expected an object")
    oid = _text(value.get("id"), "order.id")
    items = value.get("items", [])
    if not isinstance(items, list):
        raise ValidationError("order.items", "expected an array")
    clean_items = [_item(item, f"order.items[{i}]") for i, item in enumerate(items)]
    total = _money(value.get("total", 0), "order.total")
    currency = value.get("currency", "EUR")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise ValidationError("order.currency", "expected an ISO 4217 code, e.g. 'EUR'")
    data: dict[str, Any] = {
        "id": oid,
        "items": clean_items,
        "total": str(total),
        "currency": currency.upper(),
    }
    for key in ("tracking_url", "carrier", "delivery_method", "url"):
        text = _optional(value, key, f"order.{key}")
        if text is not None:
            if key.endswith("url") and not text.startswith(("http://", "https://")):
                raise ValidationError(f"order.{key}", "expected an http:// or https:// URL")
            data[key] = text
    return OrderRecord(oid, customer_id, occurred, status, total, currency.upper(), data)


def _item(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(field, "expected an object")
    kind = value.get("kind")
    if kind not in KINDS:
        raise ValidationError(f"{field}.kind", f"expected one of {', '.join(KINDS)}")
    qty = value.get("qty", 1)
    if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
        raise ValidationError(f"{field}.qty", "expected an integer of at least 1")
    item: dict[str, Any] = {
        "sku": _text(value.get("sku"), f"{field}.sku"),
        "name": _text(value.get("name"), f"{field}.name"),
        "category": _text(value.get("category", "general"), f"{field}.category"),
        "kind": kind,
        "qty": qty,
        "price": str(_money(value.get("price", 0), f"{field}.price")),
    }
    usage = value.get("usage_days")
    if usage is not None:
        if isinstance(usage, bool) or not isinstance(usage, int) or not 1 <= usage <= 3650:
            raise ValidationError(f"{field}.usage_days", "expected an integer from 1 to 3650")
        item["usage_days"] = usage
    return item
