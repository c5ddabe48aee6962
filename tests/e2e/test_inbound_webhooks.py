"""Inbound SMS end to end: parts reassembled, signed webhooks retried, keywords on any modem."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from drivers.clock import SystemClock
from drivers.pdu import encode_deliver
from drivers.sim import SimNetwork
from drivers.sim.storage import PduKind
from tests.e2e.daemon import running_daemon, write_config

SECRET = "whsec-e2e-0123456789"
HANDSET = "+34655000123"
# ó and º are not in GSM 7-bit: UCS-2, three parts of at most 67 characters.
LONG_REPLY = (
    "Hola, ¿podéis cambiar la dirección de entrega del pedido 1042? Ahora vivo en la "
    "calle Mayor 15, 3º izquierda, 28013 Madrid. Mañana por la tarde estaré en casa. ¡Gracias!"
)


@dataclass
class Receiver:
    """A webhook endpoint on 127.0.0.1 that fails the first ``fail_first`` attempts per event."""

    fail_first: int
    attempts: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        event = json.loads(body)["event"]
        earlier = sum(1 for h, _, _ in self.attempts if h["X-Gatewayd-Event"] == event)
        status = 500 if earlier < self.fail_first else 200
        self.attempts.append((dict(request.headers), body, status))
        self.arrived.set()
        return web.Response(status=status)

    async def wait(self, done: Any, within: float = 20.0) -> None:
        """Until ``done()`` holds, woken by each request."""
        async with asyncio.timeout(within):
            while not done():
                self.arrived.clear()
                await self.arrived.wait()

    def of(self, event: str) -> list[tuple[dict[str, str], bytes, int]]:
        return [a for a in self.attempts if a[0]["X-Gatewayd-Event"] == event]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver(fail_first=2)
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    rec.url = f"http://{host}:{port}/hook"
    yield rec
    await runner.cleanup()


@pytest.fixture
async def net() -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=SystemClock(), seed=7, default_handset={"report_delay": 0.05})
    yield network
    await network.close()


def hook_config(tmp_path: Path, ports: list[str], url: str) -> Path:
    (tmp_path / "hook-secret").write_text(SECRET + "\n")
    return write_config(
        tmp_path,
        ports,
        f'[webhooks]\nurl = "{url}"\nsecret_file = "hook-secret"\n'
        "backoff_base_seconds = 0.2\nmax_attempts = 5\n",
    )


def verify(headers: dict[str, str], body: bytes) -> None:
    """The receiver's check: HMAC-SHA256 over "<timestamp>.<raw body>" with the secret."""
    timestamp = headers["X-Gatewayd-Timestamp"]
    mac = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(headers["X-Gatewayd-Signature"], f"v1={mac.hexdigest()}")
    assert abs(datetime.now(UTC).timestamp() - int(timestamp)) < 300


async def test_three_part_inbound_out_of_order_reassembled_and_webhook_retried(
    net: SimNetwork, tmp_path: Path, receiver: Receiver
) -> None:
    sim = await net.add_modem(profile="simcom", transport="pty", latency=(0.0, 0.0))
    config = hook_config(tmp_path, [sim.url], receiver.url)
    async with running_daemon(config) as d:
        await d.wait_for("/v1/modems", lambda b: b["modems"][0]["state"] == "ready")
        pdus = encode_deliver(
            HANDSET, LONG_REPLY, scts=datetime.now(UTC), smsc=net.smsc, concat_ref=77
        )
        assert len(pdus) == 3
        # The network hands them over out of order: 3, 1, 2.
        for pdu in (pdus[2], pdus[0], pdus[1]):
            sim.deliver(pdu, PduKind.DELIVER)

        inbound = await d.wait_for(
            "/v1/inbound", lambda b: any(not m["incomplete"] for m in b["items"])
        )
        (msg,) = inbound["items"]
        assert (msg["from"], msg["text"], msg["modem"]) == (HANDSET, LONG_REPLY, "m1")
        assert (msg["parts_received"], msg["parts_total"]) == (3, 3)

        # Failed twice (HTTP 500), then delivered on the third attempt.
        await receiver.wait(lambda: len(receiver.of("message.received")) >= 3)
        attempts = receiver.of("message.received")
        assert [status for _, _, status in attempts] == [500, 500, 200]
        for headers, body, _ in attempts:
            verify(headers, body)
        payloads = [json.loads(body) for _, body, _ in attempts]
        assert len({p["id"] for p in payloads}) == 1  # the same event each time
        data = payloads[-1]["data"]
        assert (data["id"], data["from"], data["text"]) == (msg["id"], HANDSET, LONG_REPLY)
        assert (data["incomplete"], data["parts_total"]) == (False, 3)
        failures = await d.wait_for("/v1/webhooks/failures", lambda b: True)
        assert failures["items"] == []
        # Each part left the modem's memory once committed.
        await sim.wait_event("command", count=3, contains="+CMGD=")
        assert all(store.used == 0 for store in sim.stores.values())


async def test_stop_and_baja_on_different_modems_then_start(
    net: SimNetwork, tmp_path: Path
) -> None:
    a = await net.add_modem(profile="simcom", transport="pty", latency=(0.0, 0.0))
    b = await net.add_modem(profile="quectel", transport="tcp", latency=(0.0, 0.0))
    net.add_handset(HANDSET, report_delay=0.05)
    config = write_config(tmp_path, [a.url, b.url])
    config.write_text(
        config.read_text().replace(
            'stop_reply = "Baja confirmada"\n',
            'stop_reply = "Baja confirmada"\nstart_reply = "Alta confirmada"\n',
        )
    )
    handset = net.handset(HANDSET)

    def from_modems() -> list[tuple[str, str]]:
        """What the handset got, as (text, which simulated modem sent it)."""
        return [(r.text, net.modem(r.sender).id) for r in handset.received]

    async with running_daemon(config) as d:
        await d.wait_for(
            "/v1/modems", lambda body: all(m["state"] == "ready" for m in body["modems"])
        )
        later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        status, offer = await d.call(
            "POST",
            "/v1/messages",
            {"to": HANDSET, "text": "Oferta", "category": "marketing", "send_at": later},
        )
        assert status == 202, offer

        # "STOP" reaches modem A; the network hands the same PDU over twice.
        (stop,) = encode_deliver(HANDSET, "STOP", scts=datetime.now(UTC), smsc=net.smsc)
        a.deliver(stop, PduKind.DELIVER)
        a.deliver(stop, PduKind.DELIVER)
        await handset.wait_received(1, timeout=10)
        await d.wait_for(f"/v1/messages/{offer['id']}", lambda m: m["status"] == "cancelled")
        status, refused = await d.call("POST", "/v1/messages", {"to": HANDSET, "text": "¿Hola?"})
        assert (status, refused["error"]["code"]) == (409, "opted_out")

        # "Baja" (Spanish) reaches modem B: still one entry, one more confirmation, from B.
        await net.inject_inbound(to=b.msisdn, sender=HANDSET, text="Baja")
        await handset.wait_received(2, timeout=10)
        optouts = await d.wait_for("/v1/optouts", lambda body: len(body["items"]) >= 1)
        assert [(o["number"], o["scope"]) for o in optouts["items"]] == [(HANDSET, "all")]

        # "start" on modem A: subscribed again, one confirmation, and messages go again.
        await net.inject_inbound(to=a.msisdn, sender=HANDSET, text="start")
        await handset.wait_received(3, timeout=10)
        await d.wait_for("/v1/optouts", lambda body: body["items"] == [])
        status, back = await d.call("POST", "/v1/messages", {"to": HANDSET, "text": "Bienvenido"})
        assert status == 202, back
        await d.wait_for(f"/v1/messages/{back['id']}", lambda m: m["status"] == "delivered")

        inbound = await d.wait_for("/v1/inbound", lambda body: len(body["items"]) == 3)
        assert sorted((m["text"], m["modem"]) for m in inbound["items"]) == [
            ("Baja", "m2"),
            ("STOP", "m1"),
            ("start", "m1"),
        ]
        # The reply to a keyword goes out on the modem the keyword came in on.
        assert from_modems()[:3] == [
            ("Baja confirmada", a.id),
            ("Baja confirmada", b.id),
            ("Alta confirmada", a.id),
        ]
        assert [text for text, _ in from_modems()] == [
            "Baja confirmada",
            "Baja confirmada",
            "Alta confirmada",
            "Bienvenido",
        ]
        # The cancelled offer stays cancelled after the START.
        _, offer_now = await d.call("GET", f"/v1/messages/{offer['id']}")
        assert offer_now["status"] == "cancelled"
