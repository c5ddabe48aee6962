"""A test client for the API that checks every response against the OpenAPI document."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jsonschema

from gatewayd.api import OPENAPI

_TEMPLATES = [
    (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path) for path in OPENAPI["paths"]
]


def template_of(path: str) -> str | None:
    """The OpenAPI path template a concrete path matches (literal paths win)."""
    matches = [t for rx, t in _TEMPLATES if rx.match(path)]
    return min(matches, key=lambda t: t.count("{"), default=None)


def check_against_openapi(method: str, path: str, status: int, body: Any) -> str | None:
    """Assert that the response is documented and its body fits; return the template."""
    template = template_of(path)
    schema: dict[str, Any] | None
    if template is None or method.lower() not in OPENAPI["paths"][template]:
        # Routing errors of aiohttp: still the one error shape.
        assert status in (404, 405), f"{method} {path} -> {status} is not documented"
        schema = {"$ref": "#/components/schemas/Error"}
    else:
        responses = OPENAPI["paths"][template][method.lower()]["responses"]
        assert str(status) in responses, f"{method} {template}: {status} is not documented"
        content = responses[str(status)].get("content", {})
        schema = content.get("application/json", {}).get("schema")
    if schema is None:
        return template
    validator = jsonschema.Draft202012Validator(
        {**schema, "components": OPENAPI["components"]},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    assert not errors, f"{method} {path} -> {status}: {errors[0].message} at {list(errors[0].path)}"
    return template


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class ApiClient:
    session: aiohttp.ClientSession
    base: str
    token: str
    covered: set[tuple[str, str, int]] = field(default_factory=set)

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        auth: bool = True,
    ) -> Reply:
        hdrs = dict(headers or {})
        if auth:
            hdrs["Authorization"] = f"Bearer {token if token is not None else self.token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        async with self.session.request(method, self.base + path, data=data, headers=hdrs) as r:
            text = await r.text()
            parsed = json.loads(text) if text else None
            reply = Reply(r.status, parsed, dict(r.headers))
        template = check_against_openapi(method, path.split("?")[0], reply.status, reply.body)
        if template is not None:
            self.covered.add((method.lower(), template, reply.status))
        return reply


async def wait_for_message(
    api: ApiClient, message_id: str, statuses: set[str], within: float = 10.0
) -> Any:
    """Poll GET /v1/messages/{id} until its status is one of ``statuses``."""
    import asyncio

    last: Any = None
    try:
        async with asyncio.timeout(within):
            while True:
                reply = await api.call("GET", f"/v1/messages/{message_id}")
                last = reply.body
                if reply.status == 200 and reply.body["status"] in statuses:
                    return reply.body
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"message {message_id} never reached {statuses}: {last}") from None
