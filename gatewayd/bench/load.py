"""HTTP load on the daemon's API from this process: workers posting for a fixed time."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

TEXT = "Tu pedido {n} ya ha salido. Sigue el envio en https://example.com/t/AbC123"


def number(n: int) -> str:
    """A distinct Spanish mobile number per ``n`` (up to 10 million)."""
    return f"+3468{n % 10_000_000:07d}"


@dataclass
class LoadResult:
    """What the workers saw: accepted ids, failures and per-request latencies (seconds)."""

    seconds: float = 0.0
    requests: int = 0
    accepted_ids: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile (0-1) of request latency in milliseconds."""
        if not self.latencies:
            return None
        if len(self.latencies) == 1:
            return self.latencies[0] * 1000
        cuts = statistics.quantiles(self.latencies, n=1000, method="inclusive")
        return cuts[min(998, max(0, round(q * 1000) - 1))] * 1000


class _Counter:
    def __init__(self, start: int) -> None:
        self.value = start

    def take(self, n: int = 1) -> int:
        first = self.value
        self.value += n
        return first


async def post_singles(
    url: str, headers: dict[str, str], *, workers: int, seconds: float, first: int = 0
) -> LoadResult:
    """``workers`` concurrent clients each posting one message at a time for ``seconds``."""
    result = LoadResult()
    counter = _Counter(first)
    conn = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(headers=headers, connector=conn) as http:
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                n = counter.take()
                body = {"to": number(n), "text": TEXT.format(n=n)}
                t0 = time.perf_counter()
                status, answer = await _post(http, f"{url}/v1/messages", body)
                result.latencies.append(time.perf_counter() - t0)
                result.requests += 1
                if status == 202 and isinstance(answer, dict) and "id" in answer:
                    result.accepted_ids.append(str(answer["id"]))
                else:
                    key = str(status)
                    result.errors[key] = result.errors.get(key, 0) + 1

        await asyncio.gather(*(worker() for _ in range(workers)))
        result.seconds = time.perf_counter() - start
    return result


async def post_batches(
    url: str,
    headers: dict[str, str],
    *,
    workers: int,
    seconds: float,
    size: int,
    first: int = 0,
) -> LoadResult:
    """``workers`` clients each posting batches of ``size`` messages for ``seconds``."""
    result = LoadResult()
    counter = _Counter(first)
    conn = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(headers=headers, connector=conn) as http:
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                n = counter.take(size)
                body = {
                    "messages": [
                        {"to": number(i), "text": TEXT.format(n=i)} for i in range(n, n + size)
                    ]
                }
                t0 = time.perf_counter()
                status, answer = await _post(http, f"{url}/v1/messages/batch", body)
                result.latencies.append(time.perf_counter() - t0)
                result.requests += 1
                if status != 200 or not isinstance(answer, dict):
                    result.errors[str(status)] = result.errors.get(str(status), 0) + size
                    continue
                for item in answer.get("results", []):
                    if item.get("status") == 202:
                        result.accepted_ids.append(str(item["message"]["id"]))
                    else:
                        key = str(item.get("status"))
                        result.errors[key] = result.errors.get(key, 0) + 1

        await asyncio.gather(*(worker() for _ in range(workers)))
        result.seconds = time.perf_counter() - start
    return result


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, Any]:
    try:
        async with asyncio.timeout(60):
            async with http.post(url, json=body) as resp:
                return resp.status, await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return 0, repr(exc)
