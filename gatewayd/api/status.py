"""Operations endpoints: ``GET /metrics`` (Prometheus) and the status page at ``/``.

The page is server-rendered HTML (Jinja2 templates in ``templates/``, inline CSS and SVG, no
JavaScript) that refreshes itself with a meta refresh. It sits behind the same API tokens:
the login form takes a token and opens a session (:mod:`gatewayd.api.sessions`) whose
opaque id goes in an ``HttpOnly``, ``SameSite=Strict`` cookie. ``/metrics`` takes the bearer
token like the rest of the API. Phone numbers are masked on the page as in the logs
(``logging.mask_numbers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jinja2
from aiohttp import web

from gatewayd import __version__
from gatewayd.api.fleet import FLEET
from gatewayd.api.keys import CLOCK, GATEWAY, STATE
from gatewayd.api.middleware import token_ok
from gatewayd.api.sessions import Sessions
from gatewayd.core import Gateway, InboundView, MessageView, ModemStatusView
from gatewayd.logs import mask_phone_numbers
from gatewayd.metrics import CONTENT_TYPE, ActivitySummary, GatewayMetrics, is_ready

COOKIE = "gatewayd_session"
REFRESH_SECONDS = 10
RECENT = 10
TEXT_PREVIEW = 60

METRICS = web.AppKey("metrics", GatewayMetrics)
SESSIONS = web.AppKey("sessions", Sessions)

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("gatewayd.api", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def install(app: web.Application) -> None:
    """Add the metrics registry, the sessions and the routes to an app built over a gateway."""
    metrics = GatewayMetrics(app[GATEWAY])
    app[METRICS] = metrics
    app[SESSIONS] = Sessions(app[CLOCK])

    async def unsubscribe(_app: web.Application) -> None:
        metrics.close()

    app.on_cleanup.append(unsubscribe)
    app.add_routes(ROUTES)


# -- what the page shows -------------------------------------------------------------------


def signal_bars(dbm: int | None) -> int:
    """0-4 bars for a signal strength, as handsets draw them (0 also when unknown)."""
    if dbm is None:
        return 0
    return sum(dbm >= step for step in (-103, -93, -83, -73))


@dataclass(frozen=True)
class ModemRow:
    """One modem card."""

    name: str
    state: str
    ready: bool
    reason: str
    paused: bool
    out_of_service: bool
    signal_dbm: int | None
    bars: int
    operator: str
    registration: str
    sim: str
    sent_24h: int | None  # None: no daily limit to count against
    day_limit: int | None
    sent_since_start: int
    failed_since_start: int

    @classmethod
    def of(cls, view: ModemStatusView, day_limit: int | None) -> ModemRow:
        """The card of ``view``; ``day_limit`` is its SIM's ``max_per_day``."""
        left = view.headroom.day
        return cls(
            name=view.name,
            state=view.state,
            ready=is_ready(view),
            reason=view.state_reason,
            paused=view.paused,
            out_of_service=view.out_of_service,
            signal_dbm=view.signal_dbm,
            bars=signal_bars(view.signal_dbm),
            operator=view.operator or "—",
            registration=view.registration,
            sim=view.sim or "—",
            sent_24h=day_limit - left if day_limit is not None and left is not None else None,
            day_limit=day_limit,
            sent_since_start=view.sent,
            failed_since_start=view.failed,
        )

    @property
    def used_percent(self) -> int:
        """How much of the daily limit is used, 0-100."""
        if self.sent_24h is None or not self.day_limit:
            return 0
        return min(100, round(100 * self.sent_24h / self.day_limit))


@dataclass(frozen=True)
class MessageRow:
    """One line of the recent messages."""

    at: str
    to: str
    status: str
    segments: int
    sim: str
    text: str


@dataclass(frozen=True)
class InboundRow:
    """One line of the recent inbound messages."""

    at: str
    sender: str
    modem: str
    text: str


@dataclass(frozen=True)
class Bar:
    """One rectangle of the chart."""

    x: float
    y: float
    width: float
    height: float
    kind: str  # sent | delivered | failed | optouts


@dataclass(frozen=True)
class Chart:
    """The 24-hour chart as SVG geometry (drawn by the template)."""

    width: int
    height: int
    bars: tuple[Bar, ...]
    titles: tuple[tuple[float, float, str], ...]  # (x, width, tooltip) per hour
    labels: tuple[tuple[float, str], ...]  # (x, "HH") under every sixth hour
    peak: int


def build_chart(activity: ActivitySummary, *, width: int = 480, height: int = 120) -> Chart:
    """Bars per hour: sent (wide), delivered and failed stacked inside, opt-outs below."""
    plot = height - 30  # room for the opt-out strip and the hour labels
    peak = max([h.sent for h in activity.hours] + [h.delivered + h.failed for h in activity.hours])
    scale = plot / peak if peak else 0.0
    step = width / len(activity.hours)
    bars: list[Bar] = []
    titles = []
    labels = []
    for i, h in enumerate(activity.hours):
        x = i * step
        if h.sent:
            bars.append(Bar(x + 1, plot - h.sent * scale, step - 2, h.sent * scale, "sent"))
        inner_x, inner_w = x + step * 0.25, step * 0.5
        top = float(plot)
        for kind, count in (("delivered", h.delivered), ("failed", h.failed)):
            if count:
                top -= count * scale
                bars.append(Bar(inner_x, top, inner_w, count * scale, kind))
        if h.optouts:
            bars.append(Bar(x + 1, plot + 4, step - 2, 6, "optouts"))
        titles.append(
            (
                x,
                step,
                f"{h.start:%H}:00 UTC: sent {h.sent}, delivered {h.delivered}, "
                f"failed {h.failed}, opt-outs {h.optouts}",
            )
        )
        if i % 6 == 0:
            labels.append((x, f"{h.start:%H}h"))
    return Chart(width, height, tuple(bars), tuple(titles), tuple(labels), peak)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%d %b %H:%M")


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= TEXT_PREVIEW else flat[: TEXT_PREVIEW - 1] + "…"


def _masked(fields: dict[str, Any], mask: bool) -> Mapping[str, Any]:
    # The same processor the logs use, so the page masks exactly as the journal does.
    return mask_phone_numbers(None, "", fields) if mask else fields


def message_row(view: MessageView, mask: bool) -> MessageRow:
    """A recent message as the page shows it (number and numbers in the text masked)."""
    f = _masked({"to": view.to, "text": _preview(view.text)}, mask)
    return MessageRow(
        _when(view.created_at),
        f["to"],
        view.status.value,
        view.segments,
        view.sim or "—",
        f["text"],
    )


def inbound_row(view: InboundView, mask: bool) -> InboundRow:
    """A recent inbound message as the page shows it."""
    f = _masked({"sender": view.sender, "text": _preview(view.text)}, mask)
    return InboundRow(_when(view.received_at), f["sender"], view.modem, f["text"])


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f} %"


async def page_context(gateway: Gateway, metrics: GatewayMetrics) -> dict[str, Any]:
    """Everything the status template shows."""
    config = gateway.config
    mask = config.logging.mask_numbers
    limits = {m.name: m.limits.max_per_day for m in config.modems}
    modems = [ModemRow.of(v, limits.get(v.name)) for v in gateway.modem_status()]
    now = gateway.clock.now()
    activity = metrics.activity.summary(now)
    messages = await gateway.list_messages(limit=RECENT)
    inbound = await gateway.list_inbound(limit=RECENT)
    return {
        "node": config.node_name,
        "version": __version__,
        "now": now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "refresh": REFRESH_SECONDS,
        "queue_depth": gateway.queue_depth(),
        "modems": modems,
        "ready": sum(m.ready for m in modems),
        "activity": activity,
        "since": _when(activity.since),
        "delivery_rate": _percent(activity.delivery_rate),
        "optout_rate": _percent(activity.optout_rate),
        "chart": build_chart(activity),
        "messages": [message_row(m, mask) for m in messages.items],
        "inbound": [inbound_row(i, mask) for i in inbound.items],
    }


# -- handlers ------------------------------------------------------------------------------


def _render(name: str, status: int = 200, **context: Any) -> web.Response:
    html = _templates.get_template(name).render(**context)
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    # The page shows live state and personal data: never cache it, never frame it.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'"
    )
    # Not "no-referrer": with it Chromium sends "Origin: null" on the form posts.
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _logged_in(request: web.Request) -> bool:
    return request.app[SESSIONS].valid(
        request.cookies.get(COOKIE), request.app[STATE].settings.tokens
    )


def _same_origin(request: web.Request) -> bool:
    # SameSite=Strict guards the session; this also stops another site posting the form.
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: the Prometheus text format (bearer token, like the API)."""
    body = request.app[METRICS].render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


async def index(request: web.Request) -> web.Response:
    """GET /: the status page, or a redirect to the login form."""
    if not _logged_in(request):
        return _redirect("/login")
    context = await page_context(request.app[GATEWAY], request.app[METRICS])
    fleet = request.app.get(FLEET)  # health alarms, one line each (gatewayd.fleet)
    context["alarms"] = fleet.active_alarms() if fleet is not None else []
    return _render("status.html", **context)


async def login_form(request: web.Request) -> web.Response:
    """GET /login"""
    if _logged_in(request):
        return _redirect("/")
    return _render("login.html", error=None, node=request.app[GATEWAY].config.node_name)


async def login(request: web.Request) -> web.Response:
    """POST /login (form field ``token``): open a session, set its cookie, go to ``/``."""
    node = request.app[GATEWAY].config.node_name
    if not _same_origin(request):
        return _render("login.html", status=403, error="Cross-site login refused.", node=node)
    form = await request.post()
    token = form.get("token")
    presented = token.strip().encode() if isinstance(token, str) else b""
    tokens = request.app[STATE].settings.tokens
    if not token_ok(presented, tokens):
        return _render("login.html", status=401, error="That token is not valid.", node=node)
    session_id = request.app[SESSIONS].open(presented)
    response = _redirect("/")
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(request.app[SESSIONS].lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def logout(request: web.Request) -> web.Response:
    """POST /logout: end the session and clear the cookie."""
    if not _same_origin(request):
        raise web.HTTPForbidden(reason="cross-site logout refused")
    request.app[SESSIONS].close(request.cookies.get(COOKIE))
    response = _redirect("/login")
    response.del_cookie(COOKIE, path="/")
    return response


ROUTES = [
    web.get("/metrics", metrics),
    web.get("/", index),
    web.get("/login", login_form),
    web.post("/login", login),
    web.post("/logout", logout),
]
