"""The webhook worker on the real SQLite outbox, posting to a local receiver."""

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from drivers.clock import ManualClock
from gatewayd.config import WebhookConfig
from gatewayd.core.webhooks import WebhookWorker, backoff_seconds, sign
from gatewayd.store import OptOutScope, Store, open_store

SECRET = b"hook-secret"
NUMBER = "+34611000001"


@dataclass
class Receiver:
    url: str
    requests: list[tuple[dict[str, str], bytes]]
    arrived: asyncio.Event


MakeReceiver = Callable[[list[int]], Awaitable[Receiver]]


@pytest.fixture
async def receiver_factory() -> AsyncIterator[MakeReceiver]:
    runners: list[web.AppRunner] = []

    async def make(statuses: list[int]) -> Receiver:
        got = Receiver("", [], asyncio.Event())

        async def hook(request: web.Request) -> web.Response:
            got.requests.append((dict(request.headers), await request.read()))
            got.arrived.set()
            return web.Response(status=statuses.pop(0) if statuses else 200)

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        got.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        return got

    yield make
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(str(tmp_path / "gw.db"))
    yield opened
    await opened.close()


async def queue_event(store: Store, url: str, clock: ManualClock) -> None:
    """An opt-out commits an ``optout.created`` event to the outbox for ``url``."""
    store.set_webhook_url(url)
    await store.add_optout(NUMBER, OptOutScope.ALL, "api", clock.now())


async def test_events_are_signed_over_timestamp_and_raw_body(
    receiver_factory: MakeReceiver, store: Store
) -> None:
    recv, clock = await receiver_factory([]), ManualClock()
    await queue_event(store, recv.url, clock)
    worker = WebhookWorker(store, WebhookConfig(), secret=SECRET, clock=clock)
    try:
        assert await worker.deliver_due() == 1
    finally:
        await worker.stop()
    headers, body = recv.requests[0]
    event = json.loads(body)
    assert (event["event"], event["data"]["number"]) == ("optout.created", NUMBER)
    ts = headers["X-Gatewayd-Timestamp"]
    assert int(ts) == int(clock.timestamp())
    expected = hmac.new(SECRET, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Gatewayd-Signature"], f"v1={expected}")
    assert headers["X-Gatewayd-Event"] == "optout.created"
    assert headers["Content-Type"] == "application/json"
    assert await store.pending_webhooks() == []
    assert (await store.list_webhook_failures(10)).items == ()


async def test_a_failing_receiver_gets_the_event_on_the_third_attempt_after_backoff(
    receiver_factory: MakeReceiver, store: Store
) -> None:
    recv, clock = await receiver_factory([500, 503]), ManualClock()
    config = WebhookConfig(backoff_base_seconds=10, backoff_max_seconds=3600, max_attempts=5)
    await queue_event(store, recv.url, clock)
    worker = WebhookWorker(store, config, secret=SECRET, clock=clock)
    try:
        assert await worker.deliver_due() == 1
        (pending,) = await store.pending_webhooks()
        assert pending.attempts == 1
        # Not due before the backoff (10 s) has passed.
        await clock.advance(9)
        assert await worker.deliver_due() == 0
        await clock.advance(1)
        assert await worker.deliver_due() == 1
        # The second failure doubles the wait to 20 s.
        await clock.advance(19)
        assert await worker.deliver_due() == 0
        await clock.advance(1)
        assert await worker.deliver_due() == 1
    finally:
        await worker.stop()
    assert len(recv.requests) == 3
    assert len({body for _, body in recv.requests}) == 1  # the same event each time
    assert await store.pending_webhooks() == []
    assert (await store.list_webhook_failures(10)).items == ()


async def test_gives_up_after_max_attempts_and_the_failure_is_listed(
    receiver_factory: MakeReceiver, store: Store
) -> None:
    recv, clock = await receiver_factory([500, 500, 500]), ManualClock()
    config = WebhookConfig(backoff_base_seconds=1, max_attempts=3, timeout_seconds=2)
    await queue_event(store, recv.url, clock)
    worker = WebhookWorker(store, config, secret=SECRET, clock=clock)
    try:
        for _ in range(3):
            assert await worker.deliver_due() == 1
            await clock.advance(60)
        assert await worker.deliver_due() == 0
    finally:
        await worker.stop()
    (failure,) = (await store.list_webhook_failures(10)).items
    assert (failure.url, failure.event, failure.attempts) == (recv.url, "optout.created", 3)
    assert failure.last_error == "HTTP 500"
    assert len(recv.requests) == 3


async def test_an_unreachable_receiver_is_retried_like_an_error_answer(store: Store) -> None:
    clock = ManualClock()
    # Nothing listens on port 9 of 127.0.0.1: a connection error.
    await queue_event(store, "http://127.0.0.1:9/none", clock)
    worker = WebhookWorker(
        store, WebhookConfig(max_attempts=1, timeout_seconds=2), secret=SECRET, clock=clock
    )
    try:
        assert await worker.deliver_due() == 1
    finally:
        await worker.stop()
    (failure,) = (await store.list_webhook_failures(10)).items
    assert failure.last_error is not None
    assert failure.last_error.startswith("Client")


async def test_the_running_worker_posts_as_soon_as_it_is_woken(
    receiver_factory: MakeReceiver, store: Store
) -> None:
    recv, clock = await receiver_factory([]), ManualClock()
    # Polling once an hour: only the wake-up (after an outbox commit) can explain a quick post.
    worker = WebhookWorker(store, WebhookConfig(), secret=SECRET, clock=clock, poll_seconds=3600)
    await worker.start()
    try:
        await clock.advance(0)  # the first look finds an empty outbox; the worker idles
        await queue_event(store, recv.url, clock)
        worker.wake()
        async with asyncio.timeout(5):
            await recv.arrived.wait()
    finally:
        await worker.stop()
    assert len(recv.requests) == 1


def test_backoff_doubles_and_is_capped() -> None:
    config = WebhookConfig(backoff_base_seconds=5, backoff_max_seconds=60)
    assert [backoff_seconds(config, n) for n in (1, 2, 3, 4, 5, 100)] == [5, 10, 20, 40, 60, 60]
    assert sign(b"k", 1, b"{}") == "v1=" + hmac.new(b"k", b"1.{}", hashlib.sha256).hexdigest()
