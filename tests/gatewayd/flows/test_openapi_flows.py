"""The flows' and customers' operations answer as the OpenAPI document says (each marked
``x-requires: flows``; the rest of the API is checked in tests/gatewayd/api)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from drivers.clock import ManualClock
from gatewayd.api import OPENAPI
from gatewayd.api.app import create_app
from gatewayd.api.keys import ApiSettings, ApiState
from tests.gatewayd.api.client import ApiClient
from tests.gatewayd.flows.harness import event, start_flows

TOKEN = "t" * 32


async def test_every_flows_operation_answers_as_documented(
    tmp_path: Path, clock: ManualClock
) -> None:
    fh = await start_flows(tmp_path, clock)
    state = ApiState(ApiSettings.from_config(fh.h.gateway.config, (TOKEN.encode(),)))
    app = create_app(
        fh.h.gateway,
        failures=fh.h.store,
        state=state,
        clock=clock,
        max_body_bytes=65536,
        flows=fh.engine,
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            api = ApiClient(session, str(server.make_url("")).rstrip("/"), TOKEN)
            body = event("order.placed", at=clock.now())
            assert (await api.call("POST", "/v1/events", body)).status == 202
            assert (await api.call("POST", "/v1/events", body)).status == 200
            await fh.settle()
            assert (await api.call("GET", "/v1/flows/metrics")).status == 200
            path = "/v1/customers/c-1"
            assert (await api.call("GET", f"{path}/preferences")).status == 200
            update = {"frequency": "essential"}
            assert (await api.call("PUT", f"{path}/preferences", update)).status == 200
            assert (await api.call("GET", f"{path}/timeline?limit=10")).status == 200
            assert (await api.call("GET", f"{path}/export")).status == 200
            assert (await api.call("DELETE", path)).status == 204
            assert (await api.call("GET", "/v1/customers/nobody/export")).status == 404
    finally:
        await server.close()
        await fh.close()
    documented = {
        (method, path)
        for path, item in OPENAPI["paths"].items()
        for method, op in item.items()
        if method != "parameters" and op.get("x-requires") == "flows"
    }
    exercised = {(method, path) for method, path, status in api.covered if status < 300}
    assert documented == exercised
