"""The preferences page on the short-link listener: a signed, expiring link per customer,
a plain form that stores the choice (the browser test drives it in Chromium)."""

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
from gatewayd.customers import Frequency, MessageKind
from gatewayd.customers.links import sign, verify
from tests.gatewayd.flows.harness import BASE, FlowHarness, start_flows


def test_a_token_names_its_customer_until_it_expires_and_cannot_be_forged() -> None:
    now = datetime(2026, 1, 5, tzinfo=UTC)
    token = sign(b"k" * 32, "c-42", now + timedelta(days=30))
    assert verify(b"k" * 32, token, now) == "c-42"
    assert verify(b"k" * 32, token, now + timedelta(days=31)) is None
    assert verify(b"x" * 32, token, now) is None
    payload, mac = token.split(".")
    forged = sign(b"other" * 8, "c-43", now + timedelta(days=30)).split(".")[0]
    assert verify(b"k" * 32, f"{forged}.{mac}", now) is None
    for junk in ("", ".", "abc", "a.b", "%%%.%%%", payload):
        assert verify(b"k" * 32, junk, now) is None


@pytest.fixture
async def page(tmp_path: Path, clock: ManualClock) -> AsyncIterator[tuple[FlowHarness, str]]:
    fh = await start_flows(tmp_path, clock)
    server = TestServer(create_short_link_app(fh.engine), host="127.0.0.1")
    await server.start_server()
    try:
        await fh.emit("customer.updated", with_order=False)
        url = await fh.engine.preferences_url("c-1")
        assert url.startswith(f"{BASE}/p/")
        yield fh, str(server.make_url("/p/" + url.rsplit("/p/", 1)[1]))
    finally:
        await server.close()
        await fh.close()


async def test_the_page_shows_the_choice_and_a_post_stores_it(
    page: tuple[FlowHarness, str],
) -> None:
    fh, url = page
    async with aiohttp.ClientSession() as s:
        async with s.get(url) as r:
            assert r.status == 200
            assert r.headers["Cache-Control"] == "no-store"
            html = await r.text()
        assert 'lang="es"' in html
        assert re.search(r'value="normal"\s+checked', html)
        assert not re.search(r'value="essential"\s+checked', html)
        form = aiohttp.FormData([("frequency", "reduced"), ("kinds", "reviews")])
        async with s.post(url, data=form, allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"].endswith("?saved=1")
        async with s.get(url + "?saved=1") as r:
            assert "Guardado" in await r.text()
        async with s.get(url[:-3] + "abc") as r:
            assert r.status == 404
    prefs = await fh.engine.preferences("c-1")
    assert prefs.frequency is Frequency.REDUCED
    assert prefs.kinds == {MessageKind.REVIEWS, MessageKind.TRANSACTIONAL, MessageKind.SHIPPING}
    entries = await fh.engine.timeline("c-1")
    assert [(e.what, e.reason) for e in entries] == [("preferences", "page")]


async def test_an_expired_link_shows_how_else_to_choose(
    page: tuple[FlowHarness, str], clock: ManualClock
) -> None:
    _, url = page
    await clock.advance(31 * 86_400.0)
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 404
        assert "MENOS" in await r.text()
