"""Short links over real HTTP on their own listener, and the 30/60/90 re-engagement flow
that branches on their clicks and ends in a marketing opt-out."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from drivers.clock import ManualClock
from gatewayd.api.events import create_short_link_app
from gatewayd.flows import load_flows
from gatewayd.flows.links import new_code, not_a_click, shorten
from tests.gatewayd.flows.harness import BASE, COFFEE_MACHINE, EBOOK, FlowHarness, start_flows

DAY = 86_400.0
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"
CUSTOMERS = {"a": "+34600000001", "b": "+34600000002", "c": "+34600000003"}


def code_in(text: str) -> str:
    match = re.search(re.escape(BASE) + r"/s/([A-Za-z0-9_-]+)", text)
    assert match is not None, text
    return match.group(1)


class Links:
    """An HTTP client of the short-link listener."""

    def __init__(self, session: aiohttp.ClientSession, server: TestServer) -> None:
        self.session = session
        self.server = server

    async def hit(self, code: str, *, method: str = "GET", agent: str = BROWSER) -> str | None:
        url = self.server.make_url(f"/s/{code}")
        async with self.session.request(
            method, url, headers={"User-Agent": agent}, allow_redirects=False
        ) as resp:
            if resp.status == 404:
                body = await resp.json()
                assert body["error"]["code"] == "not_found"
                return None
            assert resp.status == 302
            return resp.headers["Location"]


@pytest.fixture
async def fh(tmp_path: Path, clock: ManualClock) -> AsyncIterator[FlowHarness]:
    harness = await start_flows(tmp_path, clock)
    yield harness
    await harness.close()


@pytest.fixture
async def links(fh: FlowHarness) -> AsyncIterator[Links]:
    server = TestServer(create_short_link_app(fh.engine), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Links(session, server)
    await server.close()


async def clicks(fh: FlowHarness) -> list[tuple[str, int, str | None]]:
    rows = await fh.rows("SELECT method, counted, reason FROM flow_clicks ORDER BY seq")
    return [(r["method"], r["counted"], r["reason"]) for r in rows]


async def test_30_60_90_branches_on_clicks_and_ends_unsubscribed(
    fh: FlowHarness, links: Links
) -> None:
    for key, phone in CUSTOMERS.items():
        await fh.emit("order.placed", customer=f"c-{key}", phone=phone, order=f"O-{key}")
    await fh.modem.wait_sends(3)  # three order confirmations
    await fh.advance(30 * DAY)
    r30 = {s.recipient: s for s in fh.sends[3:]}
    assert set(r30) == set(CUSTOMERS.values())
    assert all("hace un mes" in s.text for s in r30.values())
    assert {s.at for s in r30.values()} == {T0 + timedelta(days=30)}

    # b clicks; c's link is only opened by a HEAD and by link-preview robots.
    target = await links.hit(code_in(r30[CUSTOMERS["b"]].text))
    assert target == "https://shop.example.com/novedades"
    c_code = code_in(r30[CUSTOMERS["c"]].text)
    assert await links.hit(c_code, method="HEAD") == target
    assert await links.hit(c_code, agent="facebookexternalhit/1.1") == target
    assert await links.hit(c_code, agent="WhatsApp/2.23.20.0") == target
    assert await clicks(fh) == [
        ("GET", 1, None),
        ("HEAD", 0, "head"),
        ("GET", 0, "preview_agent"),
        ("GET", 0, "preview_agent"),
    ]

    await fh.advance(30 * DAY)
    r60 = [s for s in fh.sends if "echamos de menos" in s.text]
    assert sorted(s.recipient for s in r60) == [CUSTOMERS["a"], CUSTOMERS["c"]]
    await fh.advance(30 * DAY)
    r90 = [s for s in fh.sends if "ltima oportunidad" in s.text]
    assert sorted(s.recipient for s in r90) == [CUSTOMERS["a"], CUSTOMERS["c"]]
    assert {s.at for s in r90} == {T0 + timedelta(days=90)}
    await fh.advance(7 * DAY)

    assert await fh.store.optout_scope(CUSTOMERS["a"]) == "marketing"
    assert await fh.store.optout_scope(CUSTOMERS["c"]) == "marketing"
    assert await fh.store.optout_scope(CUSTOMERS["b"]) is None
    optouts = await fh.h.gateway.list_optouts()
    assert {(o.number, o.source) for o in optouts.items} == {
        (CUSTOMERS["a"], "reengagement"),
        (CUSTOMERS["c"], "reengagement"),
    }
    # Marketing is over for a, transactional messages still reach them.
    before = len(fh.sends)
    await fh.emit("order.placed", customer="c-a", phone=CUSTOMERS["a"], order="O-a2")
    await fh.modem.wait_sends(before + 1)
    assert "O-a2" in fh.sends[-1].text

    metrics = (await fh.engine.metrics(T0)).to_json()
    flow = next(f for f in metrics["flows"] if f["flow"] == "reengagement")
    steps = {s["step"]: s for s in flow["steps"]}
    assert steps["reengage_30"]["sent"] == 3
    assert steps["reengage_30"]["clicked"] == 1
    assert steps["reengage_30"]["rates"]["clicked"] == pytest.approx(1 / 3, abs=1e-3)
    assert steps["reengage_60"]["sent"] == 2
    assert steps["reengage_60"]["clicked"] == 0
    assert steps["reengage_90"]["opted_out"] == 2
    assert flow["enrolled"] == 4


async def test_a_hit_just_after_delivery_is_a_scanner_not_a_click(
    fh: FlowHarness, links: Links, clock: ManualClock
) -> None:
    await fh.emit("order.placed", items=[EBOOK])
    await fh.modem.wait_sends(2)
    access = next(s for s in fh.sends if "ya esta disponible" in s.text)
    await fh.deliver(access)
    code = code_in(access.text)
    assert await links.hit(code) == "https://shop.example.com/help/digital/O-1"
    await fh.advance(60)
    assert await links.hit(code) == "https://shop.example.com/help/digital/O-1"
    assert await clicks(fh) == [("GET", 0, "too_soon_after_delivery"), ("GET", 1, None)]
    assert await links.hit("A" * 11) is None  # an unknown code
    metrics = (await fh.engine.metrics(T0)).to_json()
    flow = next(f for f in metrics["flows"] if f["flow"] == "digital_onboarding")
    [step] = flow["steps"]
    assert step["delivered"] == 1
    assert step["clicked"] == 1
    assert step["rates"]["delivered"] == 1.0


async def test_a_click_is_an_event_that_ends_a_wait_for_it(
    tmp_path: Path, clock: ManualClock
) -> None:
    flows = tmp_path / "flows.toml"
    flows.write_text(
        """
[templates.offer]
es = "Mira esto: https://shop.example.com/x"
[templates.thanks]
es = "Gracias por mirar"
[[flows]]
name = "nudge"
trigger = "order.placed"
category = "marketing"
steps = [
    { send = "offer" },
    { wait_for = "link.clicked", timeout = "2d", on_timeout = "exit" },
    { send = "thanks", category = "transactional" },
]
"""
    )
    fh = await start_flows(tmp_path, clock, load_flows(flows))
    server = TestServer(create_short_link_app(fh.engine), host="127.0.0.1")
    await server.start_server()
    try:
        await fh.emit("order.placed", items=[COFFEE_MACHINE])
        await fh.modem.wait_sends(1)
        await fh.advance(3600)
        async with aiohttp.ClientSession() as session:
            links = Links(session, server)
            await links.hit(code_in(fh.sends[0].text))
        await fh.settle()
        await fh.modem.wait_sends(2)
        assert fh.sends[1].text.startswith("Tienda: Gracias por mirar")
        assert fh.sends[1].at == T0 + timedelta(hours=1)
    finally:
        await server.close()
        await fh.close()


def test_shorten_replaces_each_url_once_and_keeps_punctuation() -> None:
    made = iter(["c1", "c2"])
    text, pairs = shorten(
        "Mira https://a.example/x?y=1. Y https://b.example, o https://a.example/x?y=1!",
        "https://go.example/",
        lambda _url: next(made),
    )
    assert text == (
        "Mira https://go.example/s/c1. Y https://go.example/s/c2, o https://go.example/s/c1!"
    )
    assert pairs == [("c1", "https://a.example/x?y=1"), ("c2", "https://b.example")]


def test_codes_are_unguessable_and_long_enough() -> None:
    codes = {new_code() for _ in range(1000)}
    assert len(codes) == 1000
    assert all(len(c) >= 8 and re.fullmatch(r"[A-Za-z0-9_-]+", c) for c in codes)


@pytest.mark.parametrize(
    ("method", "agent", "seconds", "reason"),
    [
        ("HEAD", BROWSER, 600, "head"),
        ("GET", "Slackbot-LinkExpanding 1.0", 600, "preview_agent"),
        ("GET", "", 600, "no_user_agent"),
        ("GET", BROWSER, 3, "too_soon_after_delivery"),
        ("GET", BROWSER, 30, None),
    ],
)
def test_what_is_not_a_click(method: str, agent: str, seconds: float, reason: str | None) -> None:
    delivered = T0
    assert not_a_click(method, agent, T0 + timedelta(seconds=seconds), delivered, 10.0) == reason
