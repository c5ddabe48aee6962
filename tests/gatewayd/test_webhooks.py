import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pytest
from aiohttp import web

from drivers.clock import ManualClock
from gatewayd.config import WebhookConfig
from gatewayd.core.webhooks import WebhookWorker, backoff_seconds, sign

SECRET = b"hook-secret"


@dataclass(frozen=True)
class Row:
    id: str
    url: str
    event: str
    payload_json: str
    attempts: int = 0
    next_at: datetime | None = None


@dataclass
class Outbox:
    """An in-memory outbox with the store's claim/outcome semantics."""

    rows: dict[str, Row] = field(default_factory=dict)
    claimed: dict[str, Row] = field(default_factory=dict)
    delivered: dict[str, datetime] = field(default_factory=dict)
    gave_up: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    async def claim_webhooks(self, now: datetime, limit: int) -> Sequence[Row]:
        due = [r for r in self.rows.values() if r.next_at is None or r.next_at <= now][:limit]
        for r in due:
            self.claimed[r.id] = self.rows.pop(r.id)
        return due

    async def webhook_delivered(self, id: str, now: datetime) -> None:
        self.delivered[id] = now
        self.settled.set()

    async def webhook_retry(self, id: str, next_at: datetime, error: str) -> None:
        self.errors.append(error)
        row = self.claimed.pop(id)
        self.rows[id] = replace(row, attempts=row.attempts + 1, next_at=next_at)

    async def webhook_gave_up(self, id: str, error: str) -> None:
        self.gave_up[id] = error

    def add(self, row: Row) -> None:
        self.rows[row.id] = row


@dataclass
class Receiver:
    url: str
    requests: list[tuple[dict[str, str], bytes]]


@pytest.fixture
async def receiver_factory() -> AsyncIterator[Callable[[list[int]], Awaitable[Receiver]]]:
    runners: list[web.AppRunner] = []

    async def make(statuses: list[int]) -> Receiver:
        got = Receiver("", [])

        async def hook(request: web.Request) -> web.Response:
            got.requests.append((dict(request.headers), await request.read()))
            status = statuses.pop(0) if statuses else 200
            return web.Response(status=status)

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        got.url = f"http://127.0.0.1:{port}/hook"
        return got

    yield make
    for runner in runners:
        await runner.cleanup()


def payload(n: int) -> str:
    return json.dumps({"event": "message.delivered", "id": f"ev{n}", "data": {"id": f"m{n}"}})


async def test_events_are_signed_over_timestamp_and_raw_body(
    receiver_factory: Callable[[list[int]], Awaitable[Receiver]],
) -> None:
    recv = await receiver_factory([])
    store, clock = Outbox(), ManualClock()
    store.add(Row("d1", recv.url, "message.delivered", payload(1)))
    worker = WebhookWorker(store, WebhookConfig(), secret=SECRET, clock=clock)
    await worker.start()
    try:
        async with asyncio.timeout(5):
            await store.settled.wait()
    finally:
        await worker.stop()
    headers, body = recv.requests[0]
    assert json.loads(body) == json.loads(payload(1))
    ts = headers["X-Gatewayd-Timestamp"]
    assert int(ts) == int(clock.timestamp())
    expected = hmac.new(SECRET, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Gatewayd-Signature"], f"v1={expected}")
    assert headers["X-Gatewayd-Event"] == "message.delivered"
    assert headers["Content-Type"] == "application/json"
    assert store.delivered == {"d1": clock.now()}


async def test_a_failing_receiver_gets_the_event_on_the_third_attempt_after_backoff(
    receiver_factory: Callable[[list[int]], Awaitable[Receiver]],
) -> None:
    recv = await receiver_factory([500, 503])
    store, clock = Outbox(), ManualClock()
    config = WebhookConfig(backoff_base_seconds=10, backoff_max_seconds=3600, max_attempts=5)
    store.add(Row("d1", recv.url, "message.sent", payload(1)))
    worker = WebhookWorker(store, config, secret=SECRET, clock=clock)
    try:
        assert await worker.deliver_due() == 1
        assert store.errors == ["HTTP 500"]
        assert store.rows["d1"].next_at == clock.now() + backoff(config, 1)
        # Not due yet: nothing is claimed before the backoff has passed.
        await clock.advance(9)
        assert await worker.deliver_due() == 0
        await clock.advance(1)
        assert await worker.deliver_due() == 1
        assert store.errors == ["HTTP 500", "HTTP 503"]
        assert store.rows["d1"].next_at == clock.now() + backoff(config, 2)
        await clock.advance(20)
        assert await worker.deliver_due() == 1
    finally:
        await worker.stop()
    assert len(recv.requests) == 3
    assert store.delivered == {"d1": clock.now()}
    assert store.gave_up == {}


async def test_gives_up_after_max_attempts_and_survives_a_dead_receiver(
    receiver_factory: Callable[[list[int]], Awaitable[Receiver]],
) -> None:
    recv = await receiver_factory([500, 500, 500])
    store, clock = Outbox(), ManualClock()
    config = WebhookConfig(backoff_base_seconds=1, max_attempts=3, timeout_seconds=2)
    store.add(Row("d1", recv.url, "message.failed", payload(1)))
    # Nothing listens on port 9 of 127.0.0.1: a connection error, retried like a 5xx.
    store.add(Row("d2", "http://127.0.0.1:9/none", "message.failed", payload(2), attempts=2))
    worker = WebhookWorker(store, config, secret=SECRET, clock=clock)
    try:
        for _ in range(3):
            await worker.deliver_due()
            await clock.advance(60)
    finally:
        await worker.stop()
    assert store.gave_up["d1"] == "HTTP 500"
    assert store.gave_up["d2"].startswith("Client")
    assert store.delivered == {}
    assert len(recv.requests) == 3


def backoff(config: WebhookConfig, failures: int) -> timedelta:
    return timedelta(seconds=backoff_seconds(config, failures))


def test_backoff_doubles_and_is_capped() -> None:
    config = WebhookConfig(backoff_base_seconds=5, backoff_max_seconds=60)
    assert [backoff_seconds(config, n) for n in (1, 2, 3, 4, 5, 100)] == [5, 10, 20, 40, 60, 60]
    assert sign(b"k", 1, b"{}") == "v1=" + hmac.new(b"k", b"1.{}", hashlib.sha256).hexdigest()
