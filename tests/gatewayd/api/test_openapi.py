"""The OpenAPI document is valid, served, and true: every operation answers as documented."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema

from gatewayd.api import OPENAPI
from tests.gatewayd.api.client import wait_for_message
from tests.gatewayd.api.conftest import Stack


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_the_document_is_well_formed() -> None:
    assert OPENAPI["openapi"].startswith("3.1")
    for name, schema in OPENAPI["components"]["schemas"].items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise AssertionError(f"components.schemas.{name}: {exc.message}") from exc
    for ref in refs(OPENAPI):
        node: Any = OPENAPI
        for key in ref.removeprefix("#/").split("/"):
            node = node[key]
        assert isinstance(node, dict), ref
    for path, item in OPENAPI["paths"].items():
        declared = {p["name"] for p in item.get("parameters", [])}
        for method, op in item.items():
            if method == "parameters":
                continue
            names = declared | {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert set(re.findall(r"\{(\w+)\}", path)) <= names, (method, path)
            assert op["responses"], (method, path)


async def test_every_documented_operation_answers_as_documented(stack: Stack) -> None:
    api = stack.api
    served = await api.call("GET", "/v1/openapi.json", auth=False)
    assert served.body == OPENAPI
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    queued = await api.call(
        "POST", "/v1/messages", {"to": "+34611000030", "text": "x", "send_at": later}
    )
    await api.call("GET", f"/v1/messages/{queued.body['id']}")
    await api.call("GET", "/v1/messages?status=queued")
    await api.call("DELETE", f"/v1/messages/{queued.body['id']}")
    await api.call(
        "POST", "/v1/messages/batch", {"messages": [{"to": "+34611000031", "text": "y"}]}
    )
    await stack.net.inject_inbound(to=stack.sim.msisdn, sender="+34611000032", text="hola")
    await api.call("GET", "/v1/inbound")
    await api.call("POST", "/v1/optouts", {"number": "+34611000033"})
    await api.call("GET", "/v1/optouts")
    await api.call("DELETE", "/v1/optouts/%2B34611000033")
    await api.call("GET", "/v1/modems")
    await api.call("POST", "/v1/modems/m1/pause")
    await api.call("POST", "/v1/modems/m1/resume")
    await api.call("GET", "/v1/webhooks/failures")
    await api.call("GET", "/healthz", auth=False)
    sent = await api.call("POST", "/v1/messages", {"to": "+34611000034", "text": "z"})
    await wait_for_message(api, sent.body["id"], {"delivered"})
    # A message went out: a modem is ready.
    assert (await api.call("GET", "/readyz", auth=False)).status == 200
    bad_cursor = await api.call("GET", "/v1/webhooks/failures?cursor=zz")
    assert (bad_cursor.status, bad_cursor.body["error"]["field"]) == (422, "cursor")
    documented = {
        (method, path)
        for path, item in OPENAPI["paths"].items()
        for method in item
        if method != "parameters" and "x-requires" not in item[method]
    }  # the flows' operations: tests/gatewayd/flows/test_openapi_flows.py
    exercised = {(method, path) for method, path, status in api.covered if status < 300}
    assert documented == exercised
