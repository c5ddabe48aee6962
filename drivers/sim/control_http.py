"""A small HTTP control API for a running simulator (demos, benchmarks), on 127.0.0.1.

Endpoints (JSON in and out; errors are ``{"error": "<field>: <reason>"}`` with 400/404):

- ``GET  /modems``                          every modem: ids, numbers, URLs, storage, faults
- ``GET  /modems/{id}``                     one modem (id, MSISDN or ICCID)
- ``GET  /modems/{id}/sent``                its per-SIM send log
- ``POST /modems/{id}/faults``              ``{"cms_error_rate": 0.2, "latency": [0, 0], ...}``
- ``POST /modems/{id}/registration``        ``{"stat": 0}`` (0 lost, 1 home, 5 roaming...)
- ``POST /modems/{id}/disconnect``          the port disappears
- ``POST /modems/{id}/reconnect``           the port comes back (``{"reboot": true}`` too)
- ``POST /modems/{id}/reboot``              a spontaneous reboot
- ``POST /modems/{id}/urc``                 ``{"lines": ["RING"]}`` printed now
- ``POST /modems/{id}/call``                ``{"number": "+346...", "ring_every": 3, "rings": 9}``
                                            an incoming call: RING (+CLIP) until ATH
- ``POST /modems/{id}/credit``              ``{"balance": 1.5, "sms_cost": 0.1}`` prepaid credit
- ``GET  /sent``                            every modem's log, by time
- ``POST /inbound``                         ``{"to": "+34600000001", "sender": "+34611...",
                                            "text": "hola"}`` -> ``{"parts": 1}``
- ``GET  /handsets``                        every handset with what it received
- ``GET  /handsets/{number}``               one handset
- ``POST /handsets``                        ``{"number": ..., "report": "failed",
                                            "report_delay": 3, "replies": ["STOP"]}``
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from drivers.sim.faults import RegStat
from drivers.sim.modem import SimModem
from drivers.sim.network import SimNetwork

NETWORK: web.AppKey[SimNetwork] = web.AppKey("network", SimNetwork)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(
            text='{"error": "body: not valid JSON"}', content_type="application/json"
        ) from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text='{"error": "body: expected a JSON object"}', content_type="application/json"
        )
    return data


def _modem(request: web.Request) -> SimModem:
    key = request.match_info["id"]
    try:
        return request.app[NETWORK].modem(key)
    except KeyError:
        raise web.HTTPNotFound(
            text=f'{{"error": "id: no modem {key}"}}', content_type="application/json"
        ) from None


async def list_modems(request: web.Request) -> web.Response:
    return web.json_response([m.info() for m in request.app[NETWORK].modems])


async def get_modem(request: web.Request) -> web.Response:
    return web.json_response(_modem(request).info())


async def modem_sent(request: web.Request) -> web.Response:
    return web.json_response([r.as_dict() for r in _modem(request).sent])


async def all_sent(request: web.Request) -> web.Response:
    return web.json_response([r.as_dict() for r in request.app[NETWORK].sent])


async def set_faults(request: web.Request) -> web.Response:
    modem = _modem(request)
    try:
        modem.set_fault(**await _body(request))
    except (ValueError, TypeError) as exc:
        return _error(400, str(exc))
    return web.json_response(modem.faults.as_dict())


async def set_registration(request: web.Request) -> web.Response:
    modem = _modem(request)
    body = await _body(request)
    try:
        stat = RegStat(int(body.get("stat", -1)))
    except (ValueError, TypeError):
        return _error(400, "stat: expected a +CREG status (0-5)")
    modem.set_registration(stat)
    return web.json_response(modem.info())


async def disconnect(request: web.Request) -> web.Response:
    modem = _modem(request)
    modem.disconnect()
    return web.json_response(modem.info())


async def reconnect(request: web.Request) -> web.Response:
    modem = _modem(request)
    body = await _body(request)
    await modem.reconnect(reboot=bool(body.get("reboot", False)))
    return web.json_response(modem.info())


async def reboot(request: web.Request) -> web.Response:
    modem = _modem(request)
    await modem.reboot()
    return web.json_response(modem.info())


async def urc(request: web.Request) -> web.Response:
    modem = _modem(request)
    lines = (await _body(request)).get("lines")
    if not isinstance(lines, list) or not lines or not all(isinstance(x, str) for x in lines):
        return _error(400, "lines: expected a non-empty list of strings")
    modem.emit_urc(*lines)
    return web.json_response({"ok": True})


async def call(request: web.Request) -> web.Response:
    modem = _modem(request)
    body = await _body(request)
    number = body.get("number")
    if not isinstance(number, str) or not number:
        return _error(400, "number: required string")
    every, rings = body.get("ring_every", 3.0), body.get("rings", 10)
    if not isinstance(every, int | float) or isinstance(every, bool) or every <= 0:
        return _error(400, "ring_every: expected seconds above 0")
    if not isinstance(rings, int) or isinstance(rings, bool) or rings < 1:
        return _error(400, "rings: expected a positive integer")
    try:
        modem.incoming_call(number, ring_every=float(every), rings=rings)
    except ValueError as exc:
        return _error(400, str(exc))
    return web.json_response({"ok": True})


async def credit(request: web.Request) -> web.Response:
    modem = _modem(request)
    body = await _body(request)
    for name in ("balance", "sms_cost"):
        value = body.get(name, getattr(modem, name))
        if not isinstance(value, int | float) or isinstance(value, bool):
            return _error(400, f"{name}: expected a number")
        setattr(modem, name, float(value))
    return web.json_response({"balance": modem.balance, "sms_cost": modem.sms_cost})


async def inbound(request: web.Request) -> web.Response:
    body = await _body(request)
    for name in ("to", "sender", "text"):
        if not isinstance(body.get(name), str) or not body[name]:
            return _error(400, f"{name}: required string")
    try:
        parts = await request.app[NETWORK].inject_inbound(
            to=body["to"],
            sender=body["sender"],
            text=body["text"],
            force_ucs2=bool(body.get("force_ucs2", False)),
        )
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    except ValueError as exc:
        return _error(400, f"text: {exc}")
    return web.json_response({"parts": parts})


async def list_handsets(request: web.Request) -> web.Response:
    return web.json_response([h.info() for h in request.app[NETWORK].handsets])


async def get_handset(request: web.Request) -> web.Response:
    number = request.match_info["number"]
    try:
        return web.json_response(request.app[NETWORK].handset(number).info())
    except KeyError:
        return _error(404, f"number: no handset {number}")


async def add_handset(request: web.Request) -> web.Response:
    body = await _body(request)
    number = body.pop("number", None)
    if not isinstance(number, str):
        return _error(400, "number: required string")
    allowed = {"report", "report_delay", "reports", "pending_first", "replies", "reply_delay"}
    unknown = set(body) - allowed
    if unknown:
        return _error(400, f"{sorted(unknown)[0]}: unknown setting")
    if isinstance(body.get("report_delay"), list):
        body["report_delay"] = tuple(body["report_delay"])
    try:
        handset = request.app[NETWORK].add_handset(number, **body)
    except (ValueError, TypeError) as exc:
        return _error(400, str(exc))
    return web.json_response(handset.info(), status=201)


def make_app(network: SimNetwork) -> web.Application:
    """The control application for ``network``."""
    app = web.Application()
    app[NETWORK] = network
    app.router.add_get("/modems", list_modems)
    app.router.add_get("/modems/{id}", get_modem)
    app.router.add_get("/modems/{id}/sent", modem_sent)
    app.router.add_post("/modems/{id}/faults", set_faults)
    app.router.add_post("/modems/{id}/registration", set_registration)
    app.router.add_post("/modems/{id}/disconnect", disconnect)
    app.router.add_post("/modems/{id}/reconnect", reconnect)
    app.router.add_post("/modems/{id}/reboot", reboot)
    app.router.add_post("/modems/{id}/urc", urc)
    app.router.add_post("/modems/{id}/call", call)
    app.router.add_post("/modems/{id}/credit", credit)
    app.router.add_get("/sent", all_sent)
    app.router.add_post("/inbound", inbound)
    app.router.add_get("/handsets", list_handsets)
    app.router.add_get("/handsets/{number}", get_handset)
    app.router.add_post("/handsets", add_handset)
    return app


async def start_control(
    network: SimNetwork, host: str = "127.0.0.1", port: int = 0
) -> web.AppRunner:
    """Serve the control API; returns the runner (``await runner.cleanup()`` to stop)."""
    runner = web.AppRunner(make_app(network))
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The TCP port a started runner listens on (useful with port 0)."""
    for address in runner.addresses:
        return int(address[1])
    raise RuntimeError("control API is not listening")
