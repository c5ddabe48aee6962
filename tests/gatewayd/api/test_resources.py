import asyncio
from typing import Any

from tests.gatewayd.api.client import ApiClient
from tests.gatewayd.api.conftest import Stack


async def poll(api: ApiClient, path: str, done: Any, within: float = 10.0) -> Any:
    """GET ``path`` until ``done(body)`` holds."""
    async with asyncio.timeout(within):
        while True:
            reply = await api.call("GET", path)
            if reply.status == 200 and done(reply.body):
                return reply.body
            await asyncio.sleep(0.05)


async def test_optouts_add_list_remove(stack: Stack) -> None:
    added = await stack.api.call(
        "POST", "/v1/optouts", {"number": "622 000 001", "scope": "marketing"}
    )
    assert (added.status, added.body["number"], added.body["scope"]) == (
        201,
        "+34622000001",
        "marketing",
    )
    marketing = await stack.api.call(
        "POST", "/v1/messages", {"to": "+34622000001", "text": "oferta", "category": "marketing"}
    )
    assert marketing.status == 409
    order = await stack.api.call("POST", "/v1/messages", {"to": "+34622000001", "text": "pedido"})
    assert order.status == 202
    listed = await stack.api.call("GET", "/v1/optouts")
    assert [o["number"] for o in listed.body["items"]] == ["+34622000001"]
    removed = await stack.api.call("DELETE", "/v1/optouts/%2B34622000001")
    assert (removed.status, removed.body) == (204, None)
    again = await stack.api.call("DELETE", "/v1/optouts/%2B34622000001")
    assert (again.status, again.body["error"]["code"]) == (404, "not_found")
    bad = await stack.api.call("POST", "/v1/optouts", {"number": "+34622000001", "scope": "some"})
    assert (bad.status, bad.body["error"]["field"]) == (422, "scope")


async def test_modems_list_pause_resume(stack: Stack) -> None:
    modems = await stack.api.call("GET", "/v1/modems")
    assert [m["name"] for m in modems.body["modems"]] == ["m1"]
    paused = await stack.api.call("POST", "/v1/modems/m1/pause")
    assert (paused.status, paused.body["paused"]) == (200, True)
    held = await stack.api.call("POST", "/v1/messages", {"to": "+34611000009", "text": "espera"})
    resumed = await stack.api.call("POST", "/v1/modems/m1/resume")
    assert (resumed.status, resumed.body["paused"]) == (200, False)
    await poll(stack.api, f"/v1/messages/{held.body['id']}", lambda b: b["status"] == "delivered")
    missing = await stack.api.call("POST", "/v1/modems/m9/pause")
    assert (missing.status, missing.body["error"]["code"]) == (404, "not_found")


async def test_inbound_is_listed(stack: Stack) -> None:
    await stack.net.inject_inbound(to=stack.sim.msisdn, sender="+34611000010", text="¿Dónde está?")
    body = await poll(stack.api, "/v1/inbound", lambda b: len(b["items"]) == 1)
    assert body["items"][0]["text"] == "¿Dónde está?"


async def test_health_and_readiness(stack: Stack) -> None:
    assert (await stack.api.call("GET", "/healthz", auth=False)).body == {"status": "ok"}
    ready = await poll(stack.api, "/readyz", lambda b: b["status"] == "ready")
    assert ready == {"status": "ready"}
    stack.daemon.request_stop()
    reply = await stack.api.call("GET", "/readyz", auth=False)
    assert reply.status == 503
    assert "shutting down" in reply.body["error"]["reasons"]
    refused = await stack.api.call("POST", "/v1/messages", {"to": "+34611000011", "text": "x"})
    assert (refused.status, refused.body["error"]["code"]) == (503, "shutting_down")
