"""Customer routes: preferences (``GET``/``PUT /v1/customers/{id}/preferences``), the
timeline of every decision the flow engine made for a customer, and privacy (export, erase)."""

from __future__ import annotations

import jinja2
from aiohttp import web

from gatewayd.api.events import FLOWS
from gatewayd.api.handlers import read_json
from gatewayd.api.middleware import ApiError
from gatewayd.api.requests import parse_limit
from gatewayd.customers import ESSENTIAL_KINDS, Frequency, MessageKind, parse_preferences
from gatewayd.flows import FlowEngine


async def _known(engine: FlowEngine, customer_id: str) -> None:
    if await engine.store.customer(customer_id) is None:
        raise ApiError(404, "not_found", f"no customer {customer_id!r}")


async def get_preferences(request: web.Request) -> web.Response:
    """GET /v1/customers/{id}/preferences: the kinds opted in to and the frequency."""
    engine, customer_id = request.app[FLOWS], request.match_info["id"]
    await _known(engine, customer_id)
    prefs = await engine.preferences(customer_id)
    return web.json_response({"customer_id": customer_id, **prefs.to_json()})


async def put_preferences(request: web.Request) -> web.Response:
    """PUT /v1/customers/{id}/preferences: ``kinds`` and/or ``frequency`` (422 naming the
    field at fault); the change is in the timeline."""
    engine, customer_id = request.app[FLOWS], request.match_info["id"]
    await _known(engine, customer_id)
    current = await engine.preferences(customer_id)
    prefs = parse_preferences(await read_json(request), current)
    await engine.set_preferences(customer_id, prefs, source="api")
    return web.json_response({"customer_id": customer_id, **prefs.to_json()})


async def get_timeline(request: web.Request) -> web.Response:
    """GET /v1/customers/{id}/timeline?limit=N: decisions and preference changes, oldest
    first (sent, deferred by cap or quiet hours, skipped by preference, consent, opt-out)."""
    engine, customer_id = request.app[FLOWS], request.match_info["id"]
    await _known(engine, customer_id)
    limit = parse_limit(request.query, default=500)
    entries = await engine.timeline(customer_id, limit)
    return web.json_response(
        {"customer_id": customer_id, "entries": [e.to_json() for e in entries]}
    )


async def export_customer(request: web.Request) -> web.Response:
    """GET /v1/customers/{id}/export: profile, consents, preferences, orders, events,
    messages, inbound, clicks, survey answers and timeline, as stored."""
    data = await request.app[FLOWS].export_customer(request.match_info["id"])
    if data is None:
        raise ApiError(404, "not_found", f"no customer {request.match_info['id']!r}")
    return web.json_response({"customer_id": request.match_info["id"], **data})


async def erase_customer(request: web.Request) -> web.Response:
    """DELETE /v1/customers/{id}: erase personal data (the number kept only as a hash in
    the opt-out list, texts removed, aggregate metrics kept); 204."""
    if not await request.app[FLOWS].erase_customer(request.match_info["id"]):
        raise ApiError(404, "not_found", f"no customer {request.match_info['id']!r}")
    return web.Response(status=204)


_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("gatewayd.api", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

# The page's words per language (the customer's locale picks; Spanish otherwise).
PAGE_TEXT: dict[str, dict[str, str]] = {
    "es": {
        "title": "Tus mensajes",
        "saved": "Guardado. Gracias.",
        "frequency": "¿Con qué frecuencia?",
        "normal": "Normal",
        "normal_help": "Pedidos, envíos y novedades.",
        "reduced": "Menos mensajes",
        "reduced_help": "La mitad de mensajes de novedades.",
        "essential": "Solo pedidos",
        "essential_help": "Solo confirmaciones y envíos de tus pedidos.",
        "kinds": "¿Qué quieres recibir?",
        "transactional": "Confirmaciones de pedido",
        "shipping": "Envíos y entregas",
        "reviews": "Peticiones de opinión",
        "loyalty": "Club y ventajas",
        "replenishment": "Recordatorios de reposición",
        "marketing": "Ofertas y novedades",
        "always": "Siempre, mientras tengas pedidos en curso.",
        "save": "Guardar",
        "gone": "Este enlace ha caducado. Responde MENOS o SOLO PEDIDOS a nuestro SMS.",
    },
    "en": {
        "title": "Your messages",
        "saved": "Saved. Thank you.",
        "frequency": "How often?",
        "normal": "Normal",
        "normal_help": "Orders, deliveries and news.",
        "reduced": "Fewer messages",
        "reduced_help": "Half as many news messages.",
        "essential": "Only orders",
        "essential_help": "Only confirmations and deliveries of your orders.",
        "kinds": "What would you like to get?",
        "transactional": "Order confirmations",
        "shipping": "Shipping and delivery",
        "reviews": "Review requests",
        "loyalty": "Club and perks",
        "replenishment": "Reorder reminders",
        "marketing": "Offers and news",
        "always": "Always, while you have orders under way.",
        "save": "Save",
        "gone": "This link has expired. Reply LESS or ONLY ORDERS to our SMS.",
    },
}


async def preferences_page(request: web.Request) -> web.Response:
    """GET|POST /p/{token} on the short-link listener: the customer's preferences as a plain
    HTML form (no JavaScript); a POST stores the choice and redirects back (303)."""
    engine = request.app[FLOWS]
    customer_id = await engine.page_customer(request.match_info["token"])
    customer = await engine.store.customer(customer_id) if customer_id else None
    lang = (customer.locale or "es")[:2].lower() if customer else "es"
    text = PAGE_TEXT.get(lang, PAGE_TEXT["es"])
    if customer is None:
        return web.Response(status=404, text=text["gone"], headers=_PAGE_HEADERS)
    if request.method == "POST":
        form = await request.post()
        body = {
            "frequency": str(form.get("frequency", "normal")),
            "kinds": [str(k) for k in form.getall("kinds", [])],
        }
        prefs = parse_preferences(body, await engine.preferences(customer.id))
        await engine.set_preferences(customer.id, prefs, source="page")
        raise web.HTTPSeeOther(f"{request.path}?saved=1", headers=_PAGE_HEADERS)
    prefs = await engine.preferences(customer.id)
    html = _templates.get_template("preferences.html").render(
        lang=lang,
        t=text,
        brand=engine.settings.brand,
        saved=request.query.get("saved") == "1",
        prefs=prefs,
        frequencies=[f.value for f in Frequency],
        kinds=[k.value for k in MessageKind],
        chosen={k.value for k in prefs.kinds},
        essential={k.value for k in ESSENTIAL_KINDS},
    )
    return web.Response(text=html, content_type="text/html", headers=_PAGE_HEADERS)


# The page names a customer: never cached, never sent on as a referrer, never framed.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}

PAGE_ROUTES = [
    web.get("/p/{token}", preferences_page),
    web.post("/p/{token}", preferences_page),
]

ROUTES = [
    web.get("/v1/customers/{id}/export", export_customer),
    web.delete("/v1/customers/{id}", erase_customer),
    web.get("/v1/customers/{id}/preferences", get_preferences),
    web.put("/v1/customers/{id}/preferences", put_preferences),
    web.get("/v1/customers/{id}/timeline", get_timeline),
]
