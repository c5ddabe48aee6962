"""Preferences: kinds and frequency honoured by the engine, set by API and SMS keyword, and
every decision in the customer's timeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from drivers.clock import ManualClock
from gatewayd.api.app import create_app
from gatewayd.api.keys import ApiSettings, ApiState
from gatewayd.customers import Frequency, MessageKind, Preferences
from gatewayd.flows import parse_flows
from tests.gatewayd.flows.harness import EBOOK, ES, FlowHarness, settings, start_flows

DAY = 86_400.0
TOKEN = "t" * 32

PROMOS = parse_flows(
    {
        "templates": {
            "promo_a": {"es": "Oferta A {{ links.shop }}", "en": "Offer A {{ links.shop }}"},
            "promo_b": {"es": "Oferta B {{ links.shop }}", "en": "Offer B {{ links.shop }}"},
            "thanks": {"es": "Gracias por tu pedido {{ order.id }}", "en": "Thanks {{ order.id }}"},
        },
        "links": {"shop": "https://shop.example.com"},
        "preferences": {
            "keywords": {
                "es": {"reduced": ["MENOS"], "reduced_reply": "Hecho: te escribiremos menos."},
                "en": {"reduced": ["LESS"], "reduced_reply": "Done: we will write less."},
            }
        },
        "flows": [
            {
                "name": "promos",
                "trigger": "order.placed",
                "steps": [
                    {"send": "thanks"},
                    {"send": "promo_a", "category": "marketing"},
                    {"send": "promo_b", "category": "marketing", "kind": "loyalty"},
                ],
            }
        ],
    }
)


async def test_an_essential_customer_gets_the_confirmation_but_no_review_request(
    tmp_path: Path, clock: ManualClock
) -> None:
    fh = await start_flows(tmp_path, clock)
    try:
        await fh.emit("customer.updated", with_order=False)
        await fh.engine.set_preferences(
            "c-1", Preferences(frequency=Frequency.ESSENTIAL), source="api"
        )
        await fh.emit("order.placed", items=[EBOOK])
        await fh.modem.wait_sends(2)
        await fh.advance(4 * DAY)
        texts = fh.texts()
        assert len(texts) == 2, texts
        assert "hemos recibido tu pedido" in texts[0]
        assert "ya está disponible" in texts[1] or "ya esta disponible" in texts[1]
        entries = await fh.engine.timeline("c-1")
        skipped = [e for e in entries if e.what == "skipped"]
        assert [(e.flow, e.step, e.kind, e.reason) for e in skipped] == [
            ("digital_onboarding", "feedback", MessageKind.REVIEWS.value, "preference")
        ]
        assert entries[0].what == "preferences"
        assert [e.step for e in entries if e.what == "sent"] == [
            "order_confirmation",
            "digital_access",
        ]
    finally:
        await fh.close()


async def test_the_menos_keyword_sets_reduced_confirms_and_halves_the_caps(
    tmp_path: Path, clock: ManualClock
) -> None:
    flow_settings = settings(marketing_per_day=2, marketing_per_week=10)
    fh = await start_flows(tmp_path, clock, PROMOS, flow_settings)
    try:
        await fh.emit("order.placed", order="O-1")
        await fh.modem.wait_sends(3)
        assert [t.split(": ", 1)[1][:8] for t in fh.texts()] == ["Gracias ", "Oferta A", "Oferta B"]

        await fh.modem.receive_text(ES, "¡Menos!", clock.now())
        await fh.settle()
        await fh.modem.wait_sends(4)
        assert fh.texts()[3] == "Tienda: Hecho: te escribiremos menos."
        prefs = await fh.engine.preferences("c-1")
        assert prefs.frequency is Frequency.REDUCED
        await fh.modem.receive_text(ES, "MENOS", clock.now())  # again: no second reply
        await fh.settle()
        assert len(fh.sends) == 4

        await fh.advance(2 * DAY)  # yesterday's two offers are out of the 24 h window
        start = clock.now()
        await fh.emit("order.placed", order="O-2")
        await fh.advance(DAY - 60)
        sent = fh.sends[4:]
        assert [s.text.split(": ", 1)[1][:8] for s in sent] == ["Gracias ", "Oferta A"]
        await fh.advance(2 * DAY)
        # One marketing message a day (half of 2): the second waits a full day.
        later = fh.sends[6]
        assert later.text.startswith("Tienda: Oferta B")
        assert later.at >= start + timedelta(days=1)
        entries = await fh.engine.timeline("c-1")
        deferred = [e for e in entries if e.what == "deferred"]
        assert [(e.step, e.reason) for e in deferred] == [("promo_b", "cap")]
        assert any(e.what == "preferences" and e.reason == "keyword" for e in entries)
    finally:
        await fh.close()


@pytest.fixture
async def api(tmp_path: Path, clock: ManualClock) -> AsyncIterator[tuple[FlowHarness, Any]]:
    fh = await start_flows(tmp_path, clock)
    config = fh.h.gateway.config
    state = ApiState(ApiSettings.from_config(config, (TOKEN.encode(),)))
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
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(base_url=str(server.make_url("/")), headers=headers) as s:
        try:
            yield fh, s
        finally:
            await server.close()
            await fh.close()


async def test_preferences_and_timeline_over_the_api(api: tuple[FlowHarness, Any]) -> None:
    fh, s = api
    async with s.get("/v1/customers/c-1/preferences") as r:
        assert r.status == 404
    await fh.emit("customer.updated", with_order=False)
    async with s.get("/v1/customers/c-1/preferences") as r:
        assert r.status == 200
        body = await r.json()
    assert body["frequency"] == "normal"
    assert body["kinds"] == sorted(k.value for k in MessageKind)
    async with s.put("/v1/customers/c-1/preferences", json={"kinds": ["nope"]}) as r:
        assert r.status == 422
        assert (await r.json())["error"]["field"] == "kinds[0]"
    new = {"kinds": ["reviews"], "frequency": "reduced"}
    async with s.put("/v1/customers/c-1/preferences", json=new) as r:
        assert r.status == 200
        body = await r.json()
    assert body["kinds"] == ["reviews", "shipping", "transactional"]
    assert body["frequency"] == "reduced"
    async with s.get("/v1/customers/c-1/timeline") as r:
        assert r.status == 200
        entries = (await r.json())["entries"]
    assert [(e["what"], e["reason"]) for e in entries] == [("preferences", "api")]
    assert entries[0]["detail"]["frequency"] == "reduced"
