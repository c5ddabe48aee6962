"""The API's application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

from aiohttp import web

from drivers.clock import Clock
from gatewayd.api.customers import ROUTES as CUSTOMER_ROUTES
from gatewayd.api.events import FLOWS
from gatewayd.api.events import ROUTES as FLOW_ROUTES
from gatewayd.api.fleet import FLEET
from gatewayd.api.fleet import ROUTES as FLEET_ROUTES
from gatewayd.api.handlers import ROUTES
from gatewayd.api.inbox import INBOX
from gatewayd.api.inbox import ROUTES as INBOX_ROUTES
from gatewayd.api.keys import (
    CLOCK,
    FAILURES,
    GATEWAY,
    STATE,
    ApiState,
    WebhookFailures,
)
from gatewayd.api.middleware import auth_middleware, error_middleware
from gatewayd.api.status import install as install_status
from gatewayd.core import Gateway
from gatewayd.fleet.service import Fleet
from gatewayd.flows import FlowEngine
from gatewayd.store.conversations_base import Conversations

Resource = Callable[[web.Application], AsyncIterator[None]]


def create_app(
    gateway: Gateway,
    *,
    failures: WebhookFailures,
    state: ApiState,
    clock: Clock,
    max_body_bytes: int,
    resources: Sequence[Resource] = (),
    flows: FlowEngine | None = None,
    fleet: Fleet | None = None,
    inbox: Conversations | None = None,
) -> web.Application:
    """The /v1 application over ``gateway``.

    ``resources`` are ``cleanup_ctx`` generators: set up in order when the runner starts,
    torn down in reverse after the listener has closed and requests in flight have ended
    (the daemon passes one that starts and drains the gateway). The owner keeps ``state``
    to swap settings on SIGHUP and to stop new submissions (503) during shutdown.
    """
    app = web.Application(
        middlewares=[error_middleware, auth_middleware], client_max_size=max_body_bytes
    )
    app[GATEWAY] = gateway
    app[FAILURES] = failures
    app[CLOCK] = clock
    app[STATE] = state
    app.cleanup_ctx.extend(resources)
    app.add_routes(ROUTES)
    if flows is not None:  # /v1/events and /v1/flows/metrics (gatewayd.api.events)
        app[FLOWS] = flows
        app.add_routes(FLOW_ROUTES)
        app.add_routes(CUSTOMER_ROUTES)  # preferences, timeline (gatewayd.api.customers)
    if inbox is not None:  # /v1/conversations and the /inbox page (gatewayd.api.inbox)
        app[INBOX] = inbox
        app.add_routes(INBOX_ROUTES)
    if fleet is not None:  # alarms, ports, richer /v1/modems (gatewayd.api.fleet)
        app[FLEET] = fleet
        app.add_routes(FLEET_ROUTES)
    # GET /metrics (a registry per app) and the status page with its login.
    install_status(app)
    return app
