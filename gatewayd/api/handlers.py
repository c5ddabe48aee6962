"""The /v1 route handlers and the one route table."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gatewayd.api.fleet import FLEET
from gatewayd.api.keys import CLOCK, FAILURES, GATEWAY, STATE
from gatewayd.api.middleware import ApiError, error_response
from gatewayd.api.openapi import OPENAPI
from gatewayd.api.requests import (
    FieldError,
    SubmitContext,
    normalise_number,
    parse_cursor,
    parse_idempotency_key,
    parse_limit,
    parse_scope,
    parse_since,
    parse_status,
    parse_submit,
)
from gatewayd.core import GatewayError, SubmitRequest, SubmitResult


async def read_json(request: web.Request) -> Any:
    """The request body as JSON: 413 over the size limit, 400 when malformed."""
    raw = await request.read()  # aiohttp raises 413 past client_max_size
    if not raw:
        raise ApiError(400, "invalid_json", "the request body is empty: expected JSON")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"malformed JSON: {exc}") from exc
    except RecursionError as exc:  # thousands of nested brackets
        raise ApiError(400, "invalid_json", "JSON nested too deeply") from exc


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise FieldError("body", "expected a JSON object")
    return body


def _submit_context(request: web.Request) -> SubmitContext:
    gateway = request.app[GATEWAY]
    return SubmitContext(
        default_region=request.app[STATE].settings.default_region,
        modems=gateway.modem_names(),
        pools=gateway.pool_names(),
        now=request.app[CLOCK].now(),
    )


def _require_accepting(request: web.Request) -> None:
    if not request.app[STATE].accepting:
        raise ApiError(503, "shutting_down", "the gateway is shutting down: retry on another node")


async def submit_message(request: web.Request) -> web.Response:
    """POST /v1/messages"""
    _require_accepting(request)
    key = parse_idempotency_key(request.headers.get("Idempotency-Key"))
    req = parse_submit(await read_json(request), _submit_context(request))
    result = await request.app[GATEWAY].submit(req, idempotency_key=key)
    return web.json_response(result.to_json(), status=202)


async def submit_batch(request: web.Request) -> web.Response:
    """POST /v1/messages/batch: every item gets its own result, in order."""
    _require_accepting(request)
    body = _object(await read_json(request))
    items = body.get("messages")
    if not isinstance(items, list) or not items:
        raise FieldError("messages", "expected a non-empty array")
    if len(items) > request.app[STATE].settings.max_batch:
        raise FieldError("messages", f"at most {request.app[STATE].settings.max_batch} per batch")
    if set(body) - {"messages"}:
        raise FieldError(sorted(set(body) - {"messages"})[0], "unknown field")
    ctx = _submit_context(request)
    results: list[dict[str, Any] | None] = [None] * len(items)
    valid: list[tuple[int, SubmitRequest]] = []
    for i, item in enumerate(items):
        try:
            valid.append((i, parse_submit(item, ctx, prefix=f"messages[{i}].")))
        except FieldError as exc:
            results[i] = _item_error(i, 422, "validation_error", exc.reason, exc.field)
    outcomes = await request.app[GATEWAY].submit_batch([req for _, req in valid])
    for (i, _), outcome in zip(valid, outcomes, strict=True):
        results[i] = _item_result(i, outcome)
    accepted = sum(1 for r in results if r is not None and r["status"] == 202)
    return web.json_response(
        {"accepted": accepted, "rejected": len(items) - accepted, "results": results}
    )


def _item_result(index: int, outcome: SubmitResult | GatewayError) -> dict[str, Any]:
    if isinstance(outcome, GatewayError):
        field = outcome.field and f"messages[{index}].{outcome.field}"
        return _item_error(index, outcome.http_status, outcome.code, outcome.message, field)
    return {"index": index, "status": 202, "message": outcome.to_json()}


def _item_error(
    index: int, status: int, code: str, message: str, field: str | None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"index": index, "status": status, "error": error}


async def get_message(request: web.Request) -> web.Response:
    """GET /v1/messages/{id}"""
    view = await request.app[GATEWAY].get_message(request.match_info["id"])
    return web.json_response(view.to_json())


async def list_messages(request: web.Request) -> web.Response:
    """GET /v1/messages?status=&to=&since=&limit=&cursor="""
    query = request.query
    to = query.get("to")
    page = await request.app[GATEWAY].list_messages(
        status=parse_status(query),
        to=normalise_number(to, request.app[STATE].settings.default_region, "to") if to else None,
        since=parse_since(query),
        limit=parse_limit(query),
        cursor=parse_cursor(query),
    )
    return web.json_response(page.to_json())


async def cancel_message(request: web.Request) -> web.Response:
    """DELETE /v1/messages/{id}: cancel a message not yet sent."""
    view = await request.app[GATEWAY].cancel(request.match_info["id"])
    return web.json_response(view.to_json())


async def list_inbound(request: web.Request) -> web.Response:
    """GET /v1/inbound"""
    query = request.query
    page = await request.app[GATEWAY].list_inbound(
        limit=parse_limit(query), cursor=parse_cursor(query)
    )
    return web.json_response(page.to_json())


async def list_optouts(request: web.Request) -> web.Response:
    """GET /v1/optouts"""
    query = request.query
    page = await request.app[GATEWAY].list_optouts(
        limit=parse_limit(query), cursor=parse_cursor(query)
    )
    return web.json_response(page.to_json())


async def add_optout(request: web.Request) -> web.Response:
    """POST /v1/optouts {number, scope?}"""
    body = _object(await read_json(request))
    if set(body) - {"number", "scope"}:
        raise FieldError(sorted(set(body) - {"number", "scope"})[0], "unknown field")
    raw = body.get("number")
    if not isinstance(raw, str) or not raw.strip():
        raise FieldError("number", "expected a phone number string")
    number = normalise_number(raw, request.app[STATE].settings.default_region, "number")
    view = await request.app[GATEWAY].add_optout(number, scope=parse_scope(body), source="api")
    return web.json_response(view.to_json(), status=201)


async def remove_optout(request: web.Request) -> web.Response:
    """DELETE /v1/optouts/{number}"""
    number = normalise_number(
        request.match_info["number"], request.app[STATE].settings.default_region, "number"
    )
    await request.app[GATEWAY].remove_optout(number)
    return web.Response(status=204)


async def list_modems(request: web.Request) -> web.Response:
    """GET /v1/modems"""
    views = request.app[GATEWAY].modem_status()
    fleet = request.app.get(FLEET)
    if fleet is not None:  # port, identities, storage, limits, alarms (gatewayd.fleet)
        return web.json_response({"modems": [fleet.modem_json(v) for v in views]})
    return web.json_response({"modems": [v.to_json() for v in views]})


async def pause_modem(request: web.Request) -> web.Response:
    """POST /v1/modems/{id}/pause"""
    name = request.match_info["id"]
    await request.app[GATEWAY].pause(name)
    return _modem_view(request, name)


async def resume_modem(request: web.Request) -> web.Response:
    """POST /v1/modems/{id}/resume"""
    name = request.match_info["id"]
    await request.app[GATEWAY].resume(name)
    return _modem_view(request, name)


def _modem_view(request: web.Request, name: str) -> web.Response:
    for view in request.app[GATEWAY].modem_status():
        if view.name == name:
            return web.json_response(view.to_json())
    raise ApiError(404, "not_found", f"no modem named {name!r}")


async def webhook_failures(request: web.Request) -> web.Response:
    """GET /v1/webhooks/failures: deliveries that gave up."""
    query = request.query
    try:
        page = await request.app[FAILURES].list_webhook_failures(
            parse_limit(query), parse_cursor(query)
        )
    except ValueError as exc:  # the store names a cursor it never handed out
        raise FieldError("cursor", str(exc)) from exc
    return web.json_response(page.to_json())


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz: the store is writable and a modem is ready, and we take work."""
    ok, reasons = await request.app[GATEWAY].readiness()
    if not request.app[STATE].accepting:
        ok, reasons = False, ["shutting down", *reasons]
    if ok:
        return web.json_response({"status": "ready"})
    return error_response(503, "not_ready", "; ".join(reasons), reasons=reasons)


async def openapi(request: web.Request) -> web.Response:
    """GET /v1/openapi.json"""
    return web.json_response(OPENAPI)


ROUTES = [
    web.post("/v1/messages", submit_message),
    web.get("/v1/messages", list_messages),
    web.post("/v1/messages/batch", submit_batch),
    web.get("/v1/messages/{id}", get_message),
    web.delete("/v1/messages/{id}", cancel_message),
    web.get("/v1/inbound", list_inbound),
    web.get("/v1/optouts", list_optouts),
    web.post("/v1/optouts", add_optout),
    web.delete("/v1/optouts/{number}", remove_optout),
    web.get("/v1/modems", list_modems),
    web.post("/v1/modems/{id}/pause", pause_modem),
    web.post("/v1/modems/{id}/resume", resume_modem),
    web.get("/v1/webhooks/failures", webhook_failures),
    web.get("/v1/openapi.json", openapi),
    web.get("/healthz", healthz),
    web.get("/readyz", readyz),
]
