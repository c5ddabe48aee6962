"""The conversations inbox: ``GET /v1/conversations[/{number}]`` for integrators and the
``/inbox`` page for admins (server-rendered, behind the status page's session login).

A reply goes through :meth:`Gateway.submit` like any API message (opt-outs, limits, the
recipient's sticky SIM); opting a number out or in uses the same calls as the API.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from gatewayd.api.keys import GATEWAY, STATE
from gatewayd.api.middleware import ApiError
from gatewayd.api.status import COOKIE, SESSIONS
from gatewayd.core import GatewayError, SubmitRequest
from gatewayd.core.submit import normalise_number
from gatewayd.store import OptOutScope
from gatewayd.store.conversations_base import (
    ConversationEntry,
    Conversations,
    ConversationSummary,
)
from gatewayd.store.timefmt import to_db

INBOX = web.AppKey("inbox", Conversations)
PAGE_SIZE = 50

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("gatewayd.api", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# -- cursors and JSON ----------------------------------------------------------------------


def _cursor(at: datetime, key: str) -> str:
    return base64.urlsafe_b64encode(f"{to_db(at)}|{key}".encode()).decode().rstrip("=")


def _parse_cursor(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ApiError(422, "validation_error", "cursor: not a cursor", "cursor") from exc
    at, sep, key = raw.partition("|")
    if not sep or not at:
        raise ApiError(422, "validation_error", "cursor: not a cursor", "cursor")
    return at, key


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(PAGE_SIZE))
    if not raw.isdigit() or not 1 <= int(raw) <= 200:
        raise ApiError(422, "validation_error", "limit: must be 1 to 200", "limit")
    return int(raw)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def summary_json(c: ConversationSummary) -> dict[str, Any]:
    """The API's ``Conversation``."""
    return {
        "number": c.number,
        "last_at": _iso(c.last_at),
        "last_direction": c.last_direction,
        "last_text": c.last_text,
        "messages": c.messages,
        "optout": c.optout,
    }


def entry_json(e: ConversationEntry) -> dict[str, Any]:
    """The API's ``ConversationMessage``."""
    return {
        "id": e.id,
        "direction": e.direction,
        "text": e.text,
        "status": e.status,
        "at": _iso(e.at),
        "modem": e.modem,
    }


def _number(request: web.Request) -> str:
    try:
        return normalise_number(
            request.match_info["number"], request.app[STATE].settings.default_region, field="number"
        )
    except GatewayError as exc:
        raise ApiError(422, "validation_error", exc.message, "number") from exc


async def list_conversations(request: web.Request) -> web.Response:
    """GET /v1/conversations: numbers by latest message, newest first, cursor paged."""
    limit = _limit(request)
    rows = await request.app[INBOX].conversations(
        limit=limit, before=_parse_cursor(request.query.get("cursor"))
    )
    nxt = _cursor(rows[-1].last_at, rows[-1].number) if len(rows) == limit else None
    return web.json_response({"conversations": [summary_json(c) for c in rows], "next_cursor": nxt})


async def get_conversation(request: web.Request) -> web.Response:
    """GET /v1/conversations/{number}: its messages both ways, newest first, cursor paged."""
    number, limit = _number(request), _limit(request)
    rows = await request.app[INBOX].thread(
        number, limit=limit, before=_parse_cursor(request.query.get("cursor"))
    )
    nxt = _cursor(rows[-1].at, rows[-1].id) if len(rows) == limit else None
    optout = _optout(request, number)
    return web.json_response(
        {
            "number": number,
            "optout": optout,
            "messages": [entry_json(e) for e in rows],
            "next_cursor": nxt,
        }
    )


def _optout(request: web.Request, number: str) -> str | None:
    scope = request.app[GATEWAY].optout_scope(number)
    return scope.value if scope is not None else None


# -- the page ------------------------------------------------------------------------------


def _logged_in(request: web.Request) -> bool:
    return request.app[SESSIONS].valid(
        request.cookies.get(COOKIE), request.app[STATE].settings.tokens
    )


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def _render(name: str, status: int = 200, **context: Any) -> web.Response:
    html = _templates.get_template(name).render(**context)
    response = web.Response(text=html, status=status, content_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'"
    )
    return response


def _see(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


async def inbox_page(request: web.Request) -> web.Response:
    """GET /inbox: conversations, newest first."""
    if not _logged_in(request):
        return _see("/login")
    rows = await request.app[INBOX].conversations(limit=PAGE_SIZE, before=_page_cursor(request))
    nxt = _cursor(rows[-1].last_at, rows[-1].number) if len(rows) == PAGE_SIZE else None
    node = request.app[GATEWAY].config.node_name
    return _render("inbox.html", node=node, rows=rows, next_cursor=nxt, quote=quote)


async def thread_page(request: web.Request) -> web.Response:
    """GET /inbox/{number}: one conversation with the reply and opt-out forms."""
    if not _logged_in(request):
        return _see("/login")
    number = _number(request)
    rows = await request.app[INBOX].thread(number, limit=PAGE_SIZE, before=_page_cursor(request))
    nxt = _cursor(rows[-1].at, rows[-1].id) if len(rows) == PAGE_SIZE else None
    return _render(
        "inbox_thread.html",
        node=request.app[GATEWAY].config.node_name,
        number=number,
        rows=rows,
        optout=_optout(request, number),
        next_cursor=nxt,
        notice=request.query.get("notice"),
        quote=quote,
    )


def _page_cursor(request: web.Request) -> tuple[str, str] | None:
    try:
        return _parse_cursor(request.query.get("cursor"))
    except ApiError:
        return None


async def reply(request: web.Request) -> web.Response:
    """POST /inbox/{number}/reply (form ``text``): queue an answer like the API does."""
    if not _logged_in(request):
        return _see("/login")
    if not _same_origin(request):
        raise web.HTTPForbidden(reason="cross-site form refused")
    number = _number(request)
    form = await request.post()
    text = form.get("text")
    back = f"/inbox/{quote(number)}"
    if not isinstance(text, str) or not text.strip():
        return _see(back + "?notice=" + quote("Write a reply first."))
    try:
        await request.app[GATEWAY].submit(SubmitRequest(to=number, text=text.strip()))
    except GatewayError as exc:
        return _see(back + "?notice=" + quote(f"Not sent: {exc.message}"))
    return _see(back + "?notice=" + quote("Reply queued."))


async def optout(request: web.Request) -> web.Response:
    """POST /inbox/{number}/optout (form ``action`` out|in): opt the number out or back in."""
    if not _logged_in(request):
        return _see("/login")
    if not _same_origin(request):
        raise web.HTTPForbidden(reason="cross-site form refused")
    number = _number(request)
    form = await request.post()
    gateway = request.app[GATEWAY]
    back = f"/inbox/{quote(number)}"
    if form.get("action") == "out":
        await gateway.add_optout(number, scope=OptOutScope.ALL, source="inbox")
        return _see(back + "?notice=" + quote("Opted out."))
    try:
        await gateway.remove_optout(number)
    except GatewayError as exc:
        return _see(back + "?notice=" + quote(exc.message))
    return _see(back + "?notice=" + quote("Opted back in."))


ROUTES = [
    web.get("/v1/conversations", list_conversations),
    web.get("/v1/conversations/{number}", get_conversation),
    web.get("/inbox", inbox_page),
    web.get("/inbox/{number}", thread_page),
    web.post("/inbox/{number}/reply", reply),
    web.post("/inbox/{number}/optout", optout),
]
