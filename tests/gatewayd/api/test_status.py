"""The status page over HTTP on a real daemon: login, session cookie, masking, logout."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gatewayd.api.status import COOKIE
from gatewayd.core.observe import InboundReceived
from tests.gatewayd.api.client import wait_for_message
from tests.gatewayd.api.conftest import TOKEN, Stack


@pytest.fixture
async def browser(stack: Stack) -> AsyncIterator[aiohttp.ClientSession]:
    """A client that keeps cookies for 127.0.0.1 (the default jar refuses IP hosts)."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=stack.api.base, cookie_jar=jar) as session:
        yield session


async def login(browser: aiohttp.ClientSession, token: str = TOKEN) -> aiohttp.ClientResponse:
    async with browser.post("/login", data={"token": token}, allow_redirects=False) as r:
        await r.read()
        return r


async def page(browser: aiohttp.ClientSession) -> str:
    async with browser.get("/", allow_redirects=False) as r:
        assert r.status == 200, r.status
        assert r.headers["Cache-Control"] == "no-store"
        return await r.text()


async def test_without_a_session_the_page_sends_you_to_the_login_form(
    browser: aiohttp.ClientSession,
) -> None:
    async with browser.get("/", allow_redirects=False) as r:
        assert (r.status, r.headers["Location"]) == (303, "/login")
    async with browser.get("/login") as r:
        html = await r.text()
    assert r.status == 200
    assert '<form class="login" method="post" action="/login">' in html
    assert 'name="token" type="password"' in html


async def test_a_wrong_token_is_refused_without_a_cookie(browser: aiohttp.ClientSession) -> None:
    r = await login(browser, "wrong-token")
    assert r.status == 401
    assert "Set-Cookie" not in r.headers
    assert not list(browser.cookie_jar)


async def test_login_sets_a_strict_httponly_opaque_cookie_and_shows_the_page(
    stack: Stack, browser: aiohttp.ClientSession
) -> None:
    r = await login(browser)
    assert (r.status, r.headers["Location"]) == (303, "/")
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert TOKEN not in cookie
    html = await page(browser)
    assert '<meta http-equiv="refresh" content="10">' in html
    assert "<script" not in html
    card = re.search(r'<article class="card modem" data-modem="m1">(.*?)</article>', html, re.S)
    assert card is not None
    assert "m1" in card.group(1)
    assert "<svg" in html  # the signal bars and the chart are inline SVG
    # The cookie is for the page only: the API still wants its bearer token.
    async with browser.get("/v1/modems") as api:
        assert api.status == 401


async def test_numbers_are_masked_as_in_the_logs(
    stack: Stack, browser: aiohttp.ClientSession
) -> None:
    sent = await stack.api.call(
        "POST", "/v1/messages", {"to": "+34611000001", "text": "Llámanos al +34911222333"}
    )
    await wait_for_message(stack.api, sent.body["id"], {"delivered"})
    received = asyncio.Event()
    assert stack.daemon.gateway is not None
    stack.daemon.gateway.observers.subscribe(
        lambda e: received.set() if isinstance(e, InboundReceived) else None
    )
    text = "<b>Hola</b> llamadme al +34655111222"
    await stack.net.inject_inbound(to=stack.sim.msisdn, sender="+34622000002", text=text)
    async with asyncio.timeout(10):
        await received.wait()
    await login(browser)
    html = await page(browser)
    for number, masked in [
        ("+34611000001", "+3461*****01"),
        ("+34911222333", "+3491*****33"),
        ("+34622000002", "+3462*****02"),
        ("+34655111222", "+3465*****22"),
    ]:
        assert number not in html
        assert masked in html
    # What an SMS says is text, never markup.
    assert "<b>Hola" not in html
    assert "&lt;b&gt;Hola&lt;/b&gt;" in html
    # The delivered message is in the last 24 hours' numbers and the chart.
    assert 'class="delivered"' in html
    assert re.search(r'id="delivery-rate"><b>100\.0 %</b>', html)


async def test_logout_ends_the_session_for_good(browser: aiohttp.ClientSession) -> None:
    await login(browser)
    session_id = next(c.value for c in browser.cookie_jar if c.key == COOKIE)
    async with browser.post("/logout", allow_redirects=False) as r:
        assert (r.status, r.headers["Location"]) == (303, "/login")
    async with browser.get("/", allow_redirects=False) as r:
        assert r.status == 303
    # Replaying the old cookie does not bring the session back.
    async with browser.get(
        "/", headers={"Cookie": f"{COOKIE}={session_id}"}, allow_redirects=False
    ) as r:
        assert r.status == 303


async def test_a_token_removed_on_reload_ends_its_sessions(
    stack: Stack, browser: aiohttp.ClientSession
) -> None:
    await login(browser)
    await page(browser)
    state = stack.daemon.api_state
    assert state is not None
    state.settings = dataclasses.replace(state.settings, tokens=(b"a-new-token-0123456789",))
    async with browser.get("/", allow_redirects=False) as r:
        assert r.status == 303


async def test_a_login_posted_from_another_site_is_refused(browser: aiohttp.ClientSession) -> None:
    async with browser.post(
        "/login",
        data={"token": TOKEN},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    ) as r:
        assert r.status == 403
        assert "Set-Cookie" not in r.headers
