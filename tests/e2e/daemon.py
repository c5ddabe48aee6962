"""Run ``gatewayd`` as a subprocess and talk to it over HTTP, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

TOKEN = "e2e-token-0123456789abcdef"


def write_config(directory: Path, ports: list[str], extra: str = "") -> Path:
    """A config for modems at ``ports`` with the API on a free port of 127.0.0.1."""
    (directory / "token").write_text(TOKEN + "\n")
    modems = "".join(
        f'[[modems]]\nname = "m{i + 1}"\nport = "{port}"\n'
        "[modems.limits]\nmax_per_minute = 100\nmax_per_hour = 1000\nmax_per_day = 10000\n"
        for i, port in enumerate(ports)
    )
    path = directory / "gatewayd.toml"
    path.write_text(
        'database = "gw.db"\n[api]\nlisten = "127.0.0.1:0"\ntoken_files = ["token"]\n'
        + modems
        + '[keywords]\nstop = ["STOP", "BAJA"]\nstart = ["START", "ALTA"]\n'
        + 'stop_reply = "Baja confirmada"\n[logging]\nformat = "json"\n'
        + extra
    )
    return path


@dataclass
class Running:
    """A daemon subprocess, its output so far, and an HTTP session to its API."""

    proc: asyncio.subprocess.Process
    url: str
    session: aiohttp.ClientSession
    lines: list[str] = field(default_factory=list)
    new_line: asyncio.Event = field(default_factory=asyncio.Event)

    async def call(
        self, method: str, path: str, body: Any = None, **headers: str
    ) -> tuple[int, Any]:
        hdrs = {"Authorization": f"Bearer {TOKEN}", **headers}
        async with self.session.request(method, self.url + path, json=body, headers=hdrs) as r:
            text = await r.text()
            return r.status, json.loads(text) if text else None

    async def wait_line(self, text: str, within: float = 10.0) -> str:
        """The first output line containing ``text``, waiting for it to be printed."""
        async with asyncio.timeout(within):
            while True:
                self.new_line.clear()
                for line in self.lines:
                    if text in line:
                        return line
                await self.new_line.wait()

    async def wait_for(self, path: str, predicate: Any, within: float = 15.0) -> Any:
        """Poll GET ``path`` until ``predicate(body)``; fail with the last body at the deadline."""
        last: Any = None
        try:
            async with asyncio.timeout(within):
                while True:
                    status, last = await self.call("GET", path)
                    if status == 200 and predicate(last):
                        return last
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"GET {path} never matched; last: {last}") from None


async def _pump(
    stream: asyncio.StreamReader,
    lines: list[str],
    new_line: asyncio.Event,
    started: asyncio.Future[str],
) -> None:
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip()
        lines.append(text)
        new_line.set()
        if not started.done():
            with contextlib.suppress(ValueError):
                event = json.loads(text)
                if event.get("event") == "gatewayd.started":
                    started.set_result(event["api"])
    if not started.done():
        started.set_exception(
            RuntimeError("gatewayd exited before it started:\n" + "\n".join(lines))
        )


@contextlib.asynccontextmanager
async def running_daemon(config: Path, env: dict[str, str] | None = None) -> AsyncIterator[Running]:
    """Start ``python -m gatewayd run --config`` (with ``env`` added to this process's
    environment) and yield once its API listens."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gatewayd",
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **env} if env else None,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    new_line = asyncio.Event()
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    pump = asyncio.create_task(_pump(proc.stdout, lines, new_line, started))
    try:
        async with asyncio.timeout(20):
            url = await started
        async with aiohttp.ClientSession() as session:
            yield Running(proc, url, session, lines, new_line)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
