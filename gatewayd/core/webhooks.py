"""Webhook delivery: post the store's outbox events, signed, with retries and a give-up.

The core writes each event to the outbox in the same transaction as the state change it
reports; this worker, a task of its own with its own HTTP session and per-request timeout,
claims due rows, POSTs them and records the outcome. A slow or dead receiver therefore delays
only its own events, never dispatch.

Each request carries ``X-Gatewayd-Timestamp: <unix seconds>`` and
``X-Gatewayd-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``: the receiver
recomputes the HMAC over the raw body and rejects old timestamps (replays). A non-2xx answer
or a network error is retried after ``backoff_base * 2^(attempt-1)`` seconds (capped); after
``max_attempts`` the delivery gives up and stays listed by ``GET /v1/webhooks/failures``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

import aiohttp
import structlog

from drivers.clock import Clock
from gatewayd import __version__
from gatewayd.config.model import WebhookConfig
from gatewayd.core.observe import Observers, WebhookAttempted

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Gatewayd-Signature"
TIMESTAMP_HEADER = "X-Gatewayd-Timestamp"


class Delivery(Protocol):
    """One claimed outbox row, as the store hands it out."""

    @property
    def id(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def event(self) -> str: ...
    @property
    def payload_json(self) -> str: ...
    @property
    def attempts(self) -> int: ...


class WebhookStore(Protocol):
    """What the worker needs from the store's outbox."""

    async def claim_webhooks(self, now: datetime, limit: int) -> Sequence[Delivery]: ...
    async def webhook_delivered(self, id: str, now: datetime) -> None: ...
    async def webhook_retry(self, id: str, next_at: datetime, error: str) -> None: ...
    async def webhook_gave_up(self, id: str, error: str) -> None: ...


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Gatewayd-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def backoff_seconds(config: WebhookConfig, failed_attempts: int) -> float:
    """Delay before the next attempt after ``failed_attempts`` (>= 1) failures."""
    exponent = min(max(failed_attempts - 1, 0), 32)  # 2**32 * base already exceeds any cap
    return float(min(config.backoff_base_seconds * 2**exponent, config.backoff_max_seconds))


class WebhookWorker:
    """Delivers due outbox events until stopped; :meth:`wake` hurries it after a commit."""

    def __init__(
        self,
        store: WebhookStore,
        config: WebhookConfig,
        *,
        secret: bytes | None,
        clock: Clock,
        poll_seconds: float = 1.0,
        batch: int = 20,
        concurrency: int = 8,
        observers: Observers | None = None,
    ) -> None:
        self._store = store
        self._observers = observers or Observers()
        self._config = config
        self._secret = secret
        self._clock = clock
        self._poll = poll_seconds
        self._batch = batch
        self._limit = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    def reconfigure(self, config: WebhookConfig, secret: bytes | None) -> None:
        """Use new settings for the next attempts (SIGHUP)."""
        self._config, self._secret = config, secret

    async def start(self) -> None:
        """Start the delivery task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self) -> None:
        """Stop the task and close the session (an attempt in flight is retried later)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    def wake(self) -> None:
        """Look at the outbox now instead of at the next poll."""
        self._wake.set()

    async def deliver_due(self) -> int:
        """Claim the due deliveries and attempt each once; returns how many were attempted."""
        rows = await self._store.claim_webhooks(self._clock.now(), self._batch)
        if rows:
            await asyncio.gather(*(self._attempt(row) for row in rows))
        return len(rows)

    async def _run(self) -> None:
        while True:
            try:
                done = await self.deliver_due()
            except Exception:
                # A store hiccup must not kill the worker; the rows stay due.
                log.exception("webhook.claim_failed")
                done = 0
            if done < self._batch:
                await self._idle()

    async def _idle(self) -> None:
        self._wake.clear()
        sleeper = asyncio.ensure_future(self._clock.sleep(self._poll))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (sleeper, waker):
                fut.cancel()

    async def _attempt(self, row: Delivery) -> None:
        async with self._limit:
            error = await self._post(row)
        attempt = row.attempts + 1
        if error is None:
            await self._store.webhook_delivered(row.id, self._clock.now())
            log.info("webhook.delivered", id=row.id, hook_event=row.event, attempt=attempt)
            outcome = "delivered"
        elif attempt >= self._config.max_attempts:
            await self._store.webhook_gave_up(row.id, error)
            log.warning("webhook.gave_up", id=row.id, hook_event=row.event, error=error)
            outcome = "gave_up"
        else:
            outcome = "retry"
            delay = backoff_seconds(self._config, attempt)
            next_at = self._clock.now() + timedelta(seconds=delay)
            await self._store.webhook_retry(row.id, next_at, error)
            log.info("webhook.retry", id=row.id, attempt=attempt, error=error, delay_s=delay)
        self._observers.emit(WebhookAttempted(row.event, outcome, self._clock.now()))

    async def _post(self, row: Delivery) -> str | None:
        """POST one event; ``None`` on a 2xx answer, else why it failed."""
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": f"gatewayd/{__version__}"})
        body = row.payload_json.encode()
        timestamp = int(self._clock.timestamp())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            "X-Gatewayd-Event": row.event,
            "X-Gatewayd-Delivery": str(row.id),
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        try:
            async with self._session.post(
                row.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._config.timeout_seconds),
            ) as resp:
                if 200 <= resp.status < 300:
                    return None
                return f"HTTP {resp.status}"
        except TimeoutError:
            return f"timeout after {self._config.timeout_seconds:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
