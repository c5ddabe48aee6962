"""The preferences page in headless Chromium, JavaScript off, on a phone-sized screen:
choose "Solo pedidos", see it stored, and see the next marketing step (a review request)
skipped by the engine.

Drives Debian's ``chromium`` through Playwright like the status page test (skipped without
it, except under ``CI=true``).
"""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp.test_utils import TestServer

from drivers.clock import ManualClock
from gatewayd.api.events import create_short_link_app
from gatewayd.customers import Frequency
from tests.browser.test_status_page import CHROMIUM, CHROMIUM_ARGS, _need_browser
from tests.gatewayd.flows.harness import EBOOK, start_flows

DAY = 86_400.0


async def test_choosing_only_orders_on_the_page_skips_the_review_request(tmp_path: Path) -> None:
    _need_browser()
    from playwright.async_api import async_playwright

    clock = ManualClock()
    fh = await start_flows(tmp_path, clock)
    server = TestServer(create_short_link_app(fh.engine), host="127.0.0.1")
    await server.start_server()
    try:
        await fh.emit("order.placed", items=[EBOOK])  # confirmation + access now, review in 3 d
        await fh.modem.wait_sends(2)
        link = await fh.engine.preferences_url("c-1")
        url = str(server.make_url("/p/" + link.rsplit("/p/", 1)[1]))
        shots = Path(os.environ.get("STATUS_SCREENSHOT_DIR", tmp_path))
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(
                    java_script_enabled=False,  # the form works without it
                    viewport={"width": 390, "height": 844},
                    is_mobile=True,
                    locale="es-ES",
                )
                page = await context.new_page()
                await page.goto(url)
                assert await page.title() == "Tus mensajes · Tienda"
                # Readable on a phone: nothing wider than the screen.
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= 390
                await page.screenshot(path=str(shots / "preferences-before.png"))
                await page.get_by_label("Solo pedidos").check()
                await page.get_by_role("button", name="Guardar").click()
                await page.wait_for_selector("#saved", timeout=10_000)
                assert await page.inner_text("#saved") == "Guardado. Gracias."
                assert await page.is_checked("input[value=essential]")
                assert await page.is_disabled("input[value=shipping]")
                await page.screenshot(path=str(shots / "preferences-saved.png"))
            finally:
                await browser.close()
        assert (await fh.engine.preferences("c-1")).frequency is Frequency.ESSENTIAL
        await fh.advance(4 * DAY)
        assert len(fh.sends) == 2  # no review request
        skipped = [e for e in await fh.engine.timeline("c-1") if e.what == "skipped"]
        assert [(e.step, e.reason) for e in skipped] == [("feedback", "preference")]
    finally:
        await server.close()
        await fh.close()
