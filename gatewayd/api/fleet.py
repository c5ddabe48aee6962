"""Fleet routes: ``GET /v1/alarms`` and ``GET /v1/ports`` (gatewayd.fleet)."""

from __future__ import annotations

from aiohttp import web

from gatewayd.fleet.service import Fleet

FLEET = web.AppKey("fleet", Fleet)


async def list_alarms(request: web.Request) -> web.Response:
    """GET /v1/alarms: every raised alarm, oldest first."""
    alarms = request.app[FLEET].active_alarms()
    return web.json_response({"alarms": [a.to_json() for a in alarms]})


async def list_ports(request: web.Request) -> web.Response:
    """GET /v1/ports: every port discovery saw and what became of it."""
    ports = request.app[FLEET].ports()
    return web.json_response(
        {
            "ports": [
                {
                    "path": p.path,
                    "state": p.state.value,
                    "reason": p.reason,
                    "modem": p.modem,
                    "iccid": p.iccid,
                    "imei": p.imei,
                }
                for p in ports
            ]
        }
    )


ROUTES = [
    web.get("/v1/alarms", list_alarms),
    web.get("/v1/ports", list_ports),
]
