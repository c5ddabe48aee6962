"""Webhooks through the real store: signed events reach a receiver; give-ups are listed."""

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.gatewayd.api.client import wait_for_message
from tests.gatewayd.api.conftest import Stack

SECRET = "webhook-secret-for-tests"


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, asyncio.Queue[tuple[dict[str, str], bytes]]]]:
    got: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await got.put((dict(request.headers), await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", got
    await runner.cleanup()


@pytest.fixture
def extra_config(
    tmp_path: Path, receiver: tuple[str, asyncio.Queue[tuple[dict[str, str], bytes]]]
) -> str:
    (tmp_path / "hook-secret").write_text(SECRET)
    return (
        f'[webhooks]\nurl = "{receiver[0]}"\nsecret_file = "hook-secret"\n'
        "max_attempts = 2\nbackoff_base_seconds = 0.1\ntimeout_seconds = 2\n"
    )


async def test_signed_events_reach_the_receiver_and_give_ups_are_listed(
    stack: Stack, receiver: tuple[str, asyncio.Queue[tuple[dict[str, str], bytes]]]
) -> None:
    _url, got = receiver
    # The message's own callback_url points nowhere: those deliveries give up.
    sent = await stack.api.call(
        "POST",
        "/v1/messages",
        {"to": "+34611000020", "text": "hola", "callback_url": "http://127.0.0.1:9/none"},
    )
    await wait_for_message(stack.api, sent.body["id"], {"delivered"})
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while {"message.sent", "message.delivered"} - {e["event"] for e in events}:
            headers, body = await got.get()
            ts = headers["X-Gatewayd-Timestamp"]
            mac = hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256)
            assert hmac.compare_digest(headers["X-Gatewayd-Signature"], "v1=" + mac.hexdigest())
            events.append(json.loads(body))
    assert all(e["data"]["id"] == sent.body["id"] for e in events)
    async with asyncio.timeout(10):
        while True:
            failures = await stack.api.call("GET", "/v1/webhooks/failures")
            if len(failures.body["items"]) >= 2:
                break
            await asyncio.sleep(0.1)
    assert {f["url"] for f in failures.body["items"]} == {"http://127.0.0.1:9/none"}
    assert {f["event"] for f in failures.body["items"]} >= {"message.sent", "message.delivered"}
