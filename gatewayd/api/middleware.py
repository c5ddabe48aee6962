"""Middlewares: one error shape for every failure, and bearer-token authentication.

Every non-2xx answer is ``{"error": {"code", "message", "field"?}}``, including the 404 and
405 that aiohttp raises itself and the 413 of an oversized body, so clients parse one shape.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from gatewayd.api.keys import STATE
from gatewayd.api.requests import FieldError
from gatewayd.core import GatewayError

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Paths a probe or a browser may read without a token.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/v1/openapi.json"})
# The status page's paths authenticate by session cookie themselves (gatewayd.api.status):
# a browser without a session is sent to the login form, not answered 401 JSON.
PAGE_PATHS = frozenset({"/", "/login", "/logout"})
# The conversations inbox (gatewayd.api.inbox) is a page behind the same session cookie.
PAGE_PREFIXES = ("/inbox",)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An answer other than 2xx, raised by a handler."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_response(
    status: int, code: str, message: str, field: str | None = None, **extra: Any
) -> web.Response:
    """The one error shape."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    error.update(extra)
    return web.json_response({"error": error}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map every exception to the error shape; log what was unexpected."""
    started = time.perf_counter()
    try:
        response = await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.code, exc.message, exc.field)
    except FieldError as exc:
        response = error_response(422, "validation_error", exc.reason, exc.field)
    except GatewayError as exc:
        response = error_response(exc.http_status, exc.code, exc.message, exc.field)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _CODES.get(exc.status, "error")
        response = error_response(exc.status, code, exc.reason)
        if exc.status == 405:
            response.headers["Allow"] = exc.headers.get("Allow", "")
    except Exception:
        log.exception("api.unhandled", method=request.method, path=request.path)
        response = error_response(500, "internal", "internal error (see the daemon's log)")
    log.debug(
        "api.request",
        method=request.method,
        path=request.path,
        status=response.status,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return response


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require ``Authorization: Bearer <token>`` outside :data:`PUBLIC_PATHS`."""
    if (
        request.path in PUBLIC_PATHS
        or request.path in PAGE_PATHS
        or any(request.path == p or request.path.startswith(p + "/") for p in PAGE_PREFIXES)
    ):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not token_ok(
        presented.strip().encode(), request.app[STATE].settings.tokens
    ):
        response = error_response(401, "unauthorized", "a valid bearer token is required")
        response.headers["WWW-Authenticate"] = 'Bearer realm="gatewayd"'
        return response
    return await handler(request)


def token_ok(presented: bytes, tokens: tuple[bytes, ...]) -> bool:
    """Whether ``presented`` is one of ``tokens`` (constant time in what matched)."""
    # Compare against every token without stopping early: timing reveals neither which
    # token matched nor how much of one did.
    ok = False
    for token in tokens:
        ok |= hmac.compare_digest(presented, token)
    return ok and bool(presented)
