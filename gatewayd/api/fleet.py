"""Fleet routes: ``GET /v1/alarms``, ``GET /v1/ports``, ``POST /v1/modems/{id}/ussd``."""

from __future__ import annotations

import json

from aiohttp import web

from drivers.at import AtError, PortGone
from drivers.modem import ModemNotReady
from drivers.modem.ussd import UssdError
from gatewayd.api.middleware import ApiError
from gatewayd.fleet.credit import CreditUnreadable
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


async def run_ussd(request: web.Request) -> web.Response:
    """POST /v1/modems/{id}/ussd ``{"code": "*111#"}``: the network's decoded answer."""
    name = request.match_info["id"]
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise ApiError(422, "validation_error", "body: not JSON", "body") from exc
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str):
        raise ApiError(422, "validation_error", "code: required string", "code")
    try:
        answer, balance = await request.app[FLEET].run_ussd(name, code)
    except KeyError as exc:
        raise ApiError(404, "not_found", f"modem {name!r} not found") from exc
    except UssdError as exc:
        if exc.field == "code":
            raise ApiError(422, "validation_error", str(exc), "code") from exc
        raise ApiError(502, "ussd_failed", str(exc)) from exc
    except CreditUnreadable as exc:
        raise ApiError(502, "ussd_failed", str(exc)) from exc
    except (ModemNotReady, PortGone) as exc:
        raise ApiError(409, "modem_not_ready", str(exc)) from exc
    except AtError as exc:
        raise ApiError(502, "ussd_failed", f"modem refused: {exc}") from exc
    except TimeoutError as exc:
        raise ApiError(504, "ussd_timeout", "no USSD answer from the network") from exc
    out: dict[str, object] = {"modem": name, "code": code, "answer": answer}
    if balance is not None:
        out["balance"] = balance.amount
        out["below_floor"] = balance.below_floor
    return web.json_response(out)


ROUTES = [
    web.get("/v1/alarms", list_alarms),
    web.get("/v1/ports", list_ports),
    web.post("/v1/modems/{id}/ussd", run_ussd),
]
