"""The status page in headless Chromium: log in through the form, see every simulated modem.

Drives Debian's ``chromium`` (``/usr/bin/chromium``, installed by ``scripts/test``) through
Playwright; ``playwright install`` is never run. Without Chromium the test is skipped, except
under ``CI=true`` where a missing browser is a failure. Screenshots go to ``tmp_path``, or to
the directory named by ``STATUS_SCREENSHOT_DIR``.
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
from drivers.sim import SimModem, SimNetwork
from gatewayd.config import load_config
from gatewayd.core.observe import InboundReceived, MessageStatusChanged
from gatewayd.daemon import Daemon
from gatewayd.sdnotify import Notifier
from gatewayd.store import MessageStatus
from tests.needs import missing

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "browser-token-0123456789"
PROFILES = ("simcom", "quectel", "huawei")


def _need_browser() -> None:
    absent = []
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which("chromium")):
        absent.append(f"Debian chromium ({CHROMIUM})")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        absent.append("the Python package playwright")
    if absent:
        reason = f"{' and '.join(absent)} not installed (scripts/test installs them)"
        missing(reason)


@dataclass
class Site:
    url: str
    daemon: Daemon
    sims: list[SimModem]


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    """A daemon with three simulated modems, some traffic, one modem paused."""
    net = SimNetwork(clock=SystemClock(), seed=9, default_handset={"report_delay": 0.02})
    sims = [await net.add_modem(profile=p, transport="tcp", latency=(0.0, 0.0)) for p in PROFILES]
    for sim, rssi in zip(sims, (25, 14, 6), strict=True):
        sim.set_fault(rssi=rssi)
    (tmp_path / "token").write_text(TOKEN + "\n")
    modems = "".join(
        f'[[modems]]\nname = "modem-{i + 1}"\nport = "{s.url}"\n'
        "[modems.limits]\nmax_per_minute = 10\nmax_per_hour = 200\nmax_per_day = 500\n"
        for i, s in enumerate(sims)
    )
    config = tmp_path / "gatewayd.toml"
    config.write_text(
        'database = "gw.db"\nnode_name = "shop-gw-1"\n'
        '[api]\nlisten = "127.0.0.1:0"\ntoken_files = ["token"]\n' + modems
    )
    daemon = Daemon(load_config(config), clock=SystemClock(), notifier=Notifier(None))
    try:
        await daemon.start()
        assert daemon.gateway is not None
        host, port = daemon.address
        url = f"http://{host}:{port}"
        delivered: list[str] = []
        inbound = asyncio.Event()

        def watch(event: object) -> None:
            if isinstance(event, MessageStatusChanged) and event.status is MessageStatus.DELIVERED:
                delivered.append(event.message_id)
            if isinstance(event, InboundReceived):
                inbound.set()

        daemon.gateway.observers.subscribe(watch)
        done = asyncio.Event()
        daemon.gateway.observers.subscribe(lambda _e: done.set() if len(delivered) >= 3 else None)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            for i, text in enumerate(["Tu pedido 1042 ha salido", "Envío confirmado", "x" * 170]):
                body = {"to": f"+3461100000{i}", "text": text, "modem": f"modem-{i + 1}"}
                async with http.post(url + "/v1/messages", json=body) as r:
                    assert r.status == 202, await r.text()
            async with asyncio.timeout(15):
                await done.wait()
            await net.inject_inbound(to=sims[0].msisdn, sender="+34622000002", text="¿Llega hoy?")
            async with asyncio.timeout(10):
                await inbound.wait()
            async with http.post(url + "/v1/modems/modem-3/pause") as r:
                assert r.status == 200
        yield Site(url, daemon, sims)
    finally:
        await daemon.stop()
        await net.close()


async def test_log_in_and_see_every_modem(site: Site, tmp_path: Path) -> None:
    _need_browser()
    from playwright.async_api import async_playwright

    shots = Path(os.environ.get("STATUS_SCREENSHOT_DIR", tmp_path))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=shutil.which("chromium") or CHROMIUM, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(viewport={"width": 1100, "height": 900})
            page = await context.new_page()
            await page.goto(site.url + "/")
            assert page.url == site.url + "/login"
            await page.fill("input[name=token]", TOKEN)
            await page.click("button[type=submit]")
            await page.wait_for_url(site.url + "/")
            [cookie] = await context.cookies()
            assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
            assert cookie["value"] != TOKEN
            for i in range(len(PROFILES)):
                card = page.locator(f'article[data-modem="modem-{i + 1}"]')
                await card.wait_for(state="visible")
                assert "ready" in await card.locator(".badge").first.inner_text()
            paused = page.locator('article[data-modem="modem-3"] .badge', has_text="paused")
            assert await paused.count() == 1
            assert "3 delivered" in await page.locator("#delivery-rate").inner_text()
            await page.screenshot(path=str(shots / "status.png"), full_page=True)

            # Readable on a phone: nothing wider than the screen.
            phone = await browser.new_context(
                viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
            )
            await phone.add_cookies(
                [
                    {
                        "name": cookie["name"],
                        "value": cookie["value"],
                        "url": site.url,
                        "httpOnly": True,
                        "sameSite": "Strict",
                    }
                ]
            )
            mobile = await phone.new_page()
            await mobile.goto(site.url + "/")
            await mobile.locator('article[data-modem="modem-1"]').wait_for(state="visible")
            overflow = await mobile.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0
            await mobile.screenshot(path=str(shots / "status-phone.png"), full_page=True)

            await page.click("text=Log out")
            await page.wait_for_url(site.url + "/login")
        finally:
            await browser.close()
    for name in ("status.png", "status-phone.png"):
        assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
