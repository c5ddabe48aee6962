"""Routes of the flows: ``POST /v1/events``, ``GET /v1/flows/metrics`` and short links.

Short links (``GET|HEAD /s/{code}``) are served by an application of their own on their own
listener, apart from the API on 127.0.0.1 (DESIGN: short links): they need no token and
face the public, so nothing else of the API is reachable there.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from gatewayd.api.handlers import read_json
from gatewayd.api.keys import CLOCK, STATE
from gatewayd.api.middleware import ApiError, error_middleware
from gatewayd.api.requests import parse_since
from gatewayd.flows import FlowEngine, parse_event

FLOWS = web.AppKey("flows", FlowEngine)

# Metrics without ?since= cover this many days back.
DEFAULT_METRICS_DAYS = 30


async def post_event(request: web.Request) -> web.Response:
    """POST /v1/events: 202 with what it started; 200 when the event_id was seen before."""
    if not request.app[STATE].accepting:
        raise ApiError(503, "shutting_down", "the gateway is shutting down: retry on another node")
    engine = request.app[FLOWS]
    event = parse_event(
        await read_json(request),
        region=request.app[STATE].settings.default_region,
        now=request.app[CLOCK].now(),
    )
    outcome = await engine.post_event(event)
    return web.json_response(outcome.to_json(), status=200 if outcome.duplicate else 202)


async def flow_metrics(request: web.Request) -> web.Response:
    """GET /v1/flows/metrics?since=ISO: per flow and per step, counts and rates."""
    since = parse_since(request.query)
    if since is None:
        since = request.app[CLOCK].now() - timedelta(days=DEFAULT_METRICS_DAYS)
    metrics = await request.app[FLOWS].metrics(since)
    return web.json_response(metrics.to_json())


ROUTES = [
    web.post("/v1/events", post_event),
    web.get("/v1/flows/metrics", flow_metrics),
]


async def short_link(request: web.Request) -> web.StreamResponse:
    """GET|HEAD /s/{code}: 302 to the target; every hit recorded, only people's counted."""
    code = request.match_info["code"]
    if not 8 <= len(code) <= 64:
        raise web.HTTPNotFound()
    url = await request.app[FLOWS].open_link(
        code, method=request.method, user_agent=request.headers.get("User-Agent")
    )
    if url is None:
        raise web.HTTPNotFound()
    # No caching: a cached redirect would hide later clicks.
    raise web.HTTPFound(
        url, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


def create_short_link_app(engine: FlowEngine) -> web.Application:
    """The application of the short-link listener: ``/s/{code}`` only."""
    app = web.Application(middlewares=[error_middleware])
    app[FLOWS] = engine
    # aiohttp answers HEAD on a GET route by itself; the handler sees request.method.
    app.add_routes([web.get("/s/{code}", short_link)])
    # The preferences page (a signed link per customer); imported here because
    # gatewayd.api.customers uses this module's FLOWS key.
    from gatewayd.api.customers import PAGE_ROUTES

    app.add_routes(PAGE_ROUTES)
    return app
