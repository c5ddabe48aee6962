"""Customer routes: preferences (``GET``/``PUT /v1/customers/{id}/preferences``), the
timeline of every decision the flow engine made for a customer, and privacy (export, erase)."""

from __future__ import annotations

from aiohttp import web

from gatewayd.api.events import FLOWS
from gatewayd.api.handlers import read_json
from gatewayd.api.middleware import ApiError
from gatewayd.api.requests import parse_limit
from gatewayd.customers import parse_preferences
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


ROUTES = [
    web.get("/v1/customers/{id}/export", export_customer),
    web.delete("/v1/customers/{id}", erase_customer),
    web.get("/v1/customers/{id}/preferences", get_preferences),
    web.put("/v1/customers/{id}/preferences", put_preferences),
    web.get("/v1/customers/{id}/timeline", get_timeline),
]
