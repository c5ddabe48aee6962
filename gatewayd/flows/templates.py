"""Message templates: sandboxed Jinja2, money and dates in the customer's locale.

The engine, not the template, adds the sender identification (brand) to every message and
the opt-out clause to marketing ones, so no template can forget them. Each template is
rendered with a sample at load and its cost reported: alphabet and SMS parts
(:func:`drivers.pdu.segments`), with a flag when it falls back to UCS-2 or passes the
segment budget (DESIGN: Spanish text and cost).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import babel
import babel.dates
import babel.numbers
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from drivers.pdu import Encoding
from drivers.pdu.segments import segments
from gatewayd.flows.links import shorten
from gatewayd.flows.model import Template
from gatewayd.store.flows_base import OrderRecord

# The opt-out clause per language; the words are in the core's STOP family (gatewayd.toml).
OPT_OUT_CLAUSE = {
    "es": "Responde BAJA para darte de baja",
    "en": "Reply STOP to opt out",
}
# A short-link code as secrets.token_urlsafe(8) makes it: what a preview counts per link.
SAMPLE_CODE = "x" * 11
SAMPLE_TOKEN = "x" * 43  # as long as a signed preferences token


class TemplateRenderError(Exception):
    """A template that cannot be rendered: which one, in which language, and why."""

    def __init__(self, template: str, language: str, reason: str) -> None:
        super().__init__(f"template {template!r} ({language}): {reason}")
        self.template = template
        self.language = language
        self.reason = reason


def language_of(locale: str | None, default: str) -> str:
    """The language part of a locale such as ``es_ES`` or ``en-GB`` (``default`` if none)."""
    if not locale:
        return default
    return locale.replace("-", "_").split("_")[0].lower() or default


def _babel_locale(locale: str | None, default: str) -> babel.Locale:
    for candidate in (locale, default, "en"):
        if candidate:
            try:
                return babel.Locale.parse(candidate.replace("-", "_"))
            except (ValueError, babel.UnknownLocaleError):
                continue
    return babel.Locale("en")


class Renderer:
    """Renders templates for one customer locale (one sandboxed environment for all)."""

    def __init__(self, default_locale: str) -> None:
        self.default_locale = default_locale
        self._env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)

    def render(
        self,
        template: Template,
        context: Mapping[str, Any],
        *,
        locale: str | None,
        timezone: str = "UTC",
    ) -> tuple[str, str]:
        """The text of ``template`` for ``locale`` with ``context``; returns (language, text)."""
        lang = language_of(locale, self.default_locale)
        if lang not in template.texts:
            lang = self.default_locale if self.default_locale in template.texts else ""
            lang = lang or next(iter(template.texts))
        loc = _babel_locale(locale or lang, self.default_locale)

        def money(amount: Any, currency: str | None = None) -> str:
            cur = currency or str(context.get("order", {}).get("currency") or "EUR")
            try:
                value = Decimal(str(amount))
            except InvalidOperation:
                return str(amount)
            return str(babel.numbers.format_currency(value, cur, locale=loc))

        def when(value: Any, fmt: str = "medium") -> str:
            moment = value
            if isinstance(value, str):
                try:
                    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    return value
            if isinstance(moment, datetime):
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)
                return str(babel.dates.format_date(moment.astimezone(_tz(timezone)), fmt, loc))
            if isinstance(moment, date):
                return str(babel.dates.format_date(moment, fmt, loc))
            return str(value)

        try:
            compiled = self._env.from_string(template.texts[lang])
            text = compiled.render({**context, "money": money, "date": when})
        except TemplateError as exc:
            raise TemplateRenderError(template.name, lang, str(exc)) from exc
        return lang, " ".join(text.split())


def _tz(name: str) -> zoneinfo.ZoneInfo | Any:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC


def order_context(order: OrderRecord | Mapping[str, Any]) -> dict[str, Any]:
    """An order as templates see it: its fields, ``placed_at`` and ``item_names``."""
    data = dict(order.data) if isinstance(order, OrderRecord) else dict(order)
    if isinstance(order, OrderRecord):
        data["placed_at"] = order.placed_at.isoformat()
    items = data.get("items", [])
    names = [str(i.get("name")) for i in items if isinstance(i, dict) and i.get("name")]
    return {**data, "item_names": ", ".join(names)}


def compose(body: str, *, brand: str, language: str, marketing: bool) -> str:
    """The message as sent: brand first (who is writing), opt-out clause last for marketing."""
    text = f"{brand}: {body}"
    if marketing:
        clause = OPT_OUT_CLAUSE.get(language, OPT_OUT_CLAUSE["en"])
        text = f"{text} {clause}"
    return text


@dataclass(frozen=True)
class Preview:
    """A template rendered with the sample, as sent, and what it costs."""

    template: str
    language: str
    text: str
    encoding: Encoding
    segments: int
    flags: tuple[str, ...]  # "ucs2", "over_budget: N > M"


def preview(
    renderer: Renderer,
    template: Template,
    *,
    brand: str,
    marketing: bool,
    budget: int,
    base_url: str,
    links: Mapping[str, str],
) -> list[Preview]:
    """Every language of ``template`` rendered with :data:`SAMPLE` and costed."""
    out = []
    for lang in template.texts:
        context = {
            **SAMPLE,
            "order": order_context(SAMPLE["order"]),
            "links": links,
            "preferences_url": f"{base_url.rstrip('/')}/p/{SAMPLE_TOKEN}",
        }
        _, body = renderer.render(template, context, locale=lang)
        body, _links = shorten(body, base_url, lambda _url: SAMPLE_CODE)
        text = compose(body, brand=brand, language=lang, marketing=marketing)
        info = segments(text, smart=template.fold_accents)
        flags = []
        if info.encoding is Encoding.UCS2:
            flags.append("ucs2")
        if info.parts > budget:
            flags.append(f"over_budget: {info.parts} > {budget}")
        out.append(Preview(template.name, lang, text, info.encoding, info.parts, tuple(flags)))
    return out


SAMPLE: dict[str, Any] = {
    "customer": {"id": "c-1", "name": "Ana García", "first_name": "Ana", "locale": "es_ES"},
    "order": {
        "id": "100234",
        "items": [
            {
                "sku": "CAF-01",
                "name": "Cafetera Express",
                "category": "electronics",
                "kind": "physical",
                "qty": 1,
                "price": "89.90",
            },
            {
                "sku": "CAP-30",
                "name": "Capsulas x30",
                "category": "coffee",
                "kind": "physical",
                "qty": 2,
                "price": "9.95",
                "usage_days": 30,
            },
        ],
        "total": "109.80",
        "currency": "EUR",
        "tracking_url": "https://track.example.com/ES123456789",
        "carrier": "Correos",
        "delivery_method": "home",
        "placed_at": "2026-01-05T09:00:00Z",
        "url": "https://shop.example.com/orders/100234",
    },
    "event": {"type": "order.placed", "event_id": "evt-1", "data": {"coupon": "HOLA10"}},
}
