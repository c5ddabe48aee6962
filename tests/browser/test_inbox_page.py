"""The conversations inbox in headless Chromium: log in, open a conversation (inbound and
outbound interleaved), send a reply that reaches the simulated handset, opt the number out.

Same browser set-up as tests/browser/test_status_page.py (Debian ``chromium`` through
Playwright, skipped without it unless ``CI=true``). Screenshots go to ``tmp_path`` or to
``STATUS_SCREENSHOT_DIR``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from drivers.clock import SystemClock
from drivers.sim import RegStat, SimModem, SimNetwork
from gatewayd.config import load_config
from gatewayd.core.observe import InboundReceived
from gatewayd.daemon import Daemon
from gatewayd.sdnotify import Notifier
from tests.browser.test_status_page import CHROMIUM, CHROMIUM_ARGS, TOKEN, _need_browser
from tests.gatewayd.api.client import ApiClient

CUSTOMER = "+34622000002"
OTHER = "+34611000009"


@dataclass
class Site:
    url: str
    net: SimNetwork
    sim: SimModem
    http: aiohttp.ClientSession


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    """A daemon on one simulated modem: a message out to the customer, their question in."""
    net = SimNetwork(clock=SystemClock(), seed=21, default_handset={"report_delay": 0.02})
    sim = await net.add_modem(profile="quectel", transport="tcp", latency=(0.0, 0.0))
    net.add_handset(CUSTOMER, report_delay=0.02)
    (tmp_path / "token").write_text(TOKEN + "\n")
    config = tmp_path / "gatewayd.toml"
    config.write_text(
        'database = "gw.db"\nnode_name = "shop-gw-1"\n'
        '[api]\nlisten = "127.0.0.1:0"\ntoken_files = ["token"]\n'
        f'[[modems]]\nname = "modem-1"\nport = "{sim.url}"\n'
        "[alarms]\ncheck_seconds = 0.1\nraise_after_seconds = 0\n"
    )
    daemon = Daemon(load_config(config), clock=SystemClock(), notifier=Notifier(None))
    try:
        await daemon.start()
        assert daemon.gateway is not None
        host, port = daemon.address
        url = f"http://{host}:{port}"
        inbound = asyncio.Event()
        daemon.gateway.observers.subscribe(
            lambda e: inbound.set() if isinstance(e, InboundReceived) else None
        )
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            for to, text in ((CUSTOMER, "Tu pedido 1042 ha salido"), (OTHER, "Hola")):
                async with http.post(url + "/v1/messages", json={"to": to, "text": text}) as r:
                    assert r.status == 202, await r.text()
            await net.handset(CUSTOMER).wait_received(1)
            await net.inject_inbound(to=sim.msisdn, sender=CUSTOMER, text="¿Llega hoy?")
            async with asyncio.timeout(10):
                await inbound.wait()
            yield Site(url, net, sim, http)
    finally:
        await daemon.stop()
        await net.close()


async def test_conversations_api_is_cursor_paged(site: Site) -> None:
    api = ApiClient(site.http, site.url, TOKEN)  # checks answers against the OpenAPI document
    first = (await api.call("GET", "/v1/conversations?limit=1")).body
    [newest] = first["conversations"]
    assert newest["number"] == CUSTOMER  # its question came last
    assert (newest["last_direction"], newest["last_text"]) == ("in", "¿Llega hoy?")
    second = (
        await api.call("GET", f"/v1/conversations?limit=1&cursor={first['next_cursor']}")
    ).body
    assert [c["number"] for c in second["conversations"]] == [OTHER]
    thread = (await api.call("GET", "/v1/conversations/%2B" + CUSTOMER[1:])).body
    assert [(m["direction"], m["text"]) for m in thread["messages"]] == [
        ("in", "¿Llega hoy?"),
        ("out", "Tu pedido 1042 ha salido"),
    ]
    bad = await api.call("GET", "/v1/conversations?cursor=%25%25")
    assert (bad.status, bad.body["error"]["field"]) == (422, "cursor")


async def test_open_a_conversation_reply_and_opt_out(site: Site, tmp_path: Path) -> None:
    _need_browser()
    from playwright.async_api import async_playwright

    shots = Path(os.environ.get("STATUS_SCREENSHOT_DIR", tmp_path))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=shutil.which("chromium") or CHROMIUM, args=CHROMIUM_ARGS
        )
        try:
            phone = await browser.new_context(
                viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
            )
            page = await phone.new_page()
            await page.goto(site.url + "/inbox")
            assert page.url == site.url + "/login"  # behind the same login
            await page.fill("input[name=token]", TOKEN)
            await page.click("button[type=submit]")
            await page.wait_for_url(site.url + "/")
            await page.goto(site.url + "/inbox")
            links = page.locator("ul.convs a")
            assert await links.count() == 2
            assert await links.first.get_attribute("data-number") == CUSTOMER
            await links.first.click()
            await page.wait_for_url(f"**/inbox/*{CUSTOMER[1:]}")
            bubbles = page.locator(".msg")
            assert [await b.get_attribute("data-direction") for b in await bubbles.all()] == [
                "in",
                "out",
            ]
            await page.fill("textarea[name=text]", "Sí, llega hoy antes de las 14 h")
            await page.click("form.reply button")
            await page.locator(".notice", has_text="Reply queued").wait_for()
            received = await site.net.handset(CUSTOMER).wait_received(2, timeout=10)
            assert received[-1].text == "Sí, llega hoy antes de las 14 h"
            await page.reload()
            await page.locator(".msg.out", has_text="llega hoy").wait_for()
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0  # works on a phone
            await page.screenshot(path=str(shots / "inbox-thread-phone.png"), full_page=True)

            await page.click("text=Opt out")
            await page.locator("#optout-state", has_text="opted out").wait_for()
            await page.goto(site.url + "/inbox")
            assert "opted out" in await page.locator("ul.convs li").first.inner_text()
            await page.screenshot(path=str(shots / "inbox-phone.png"), full_page=True)
        finally:
            await browser.close()
    async with site.http.post(
        site.url + "/v1/messages", json={"to": CUSTOMER, "text": "promo"}
    ) as r:
        assert r.status == 409  # the opt-out from the page holds for the API


async def test_a_raised_alarm_is_a_line_on_the_status_page(site: Site) -> None:
    site.sim.set_registration(RegStat.SEARCHING)
    api = ApiClient(site.http, site.url, TOKEN)
    async with asyncio.timeout(10):
        while not (await api.call("GET", "/v1/alarms")).body["alarms"]:
            await site.sim.wait_event("urc", contains="+CREG")
    jar = aiohttp.CookieJar(unsafe=True)
    async with (
        aiohttp.ClientSession(cookie_jar=jar) as browser,
        browser.post(site.url + "/login", data={"token": TOKEN}) as r,
    ):
        assert r.status == 200
        page = await r.text()
    assert 'data-alarm="not_registered"' in page
    assert "modem-1: not registered (searching)" in page
