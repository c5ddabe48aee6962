"""The daemon started as systemd starts a ``Type=notify`` service with a watchdog.

A real ``gatewayd run`` subprocess on the simulator, with ``NOTIFY_SOCKET`` pointing at an
``AF_UNIX`` datagram socket this test owns and ``WATCHDOG_USEC`` set small: it must say
``READY=1`` with a ``STATUS=`` line (modems ready, queue depth), then ping ``WATCHDOG=1``
repeatedly, update ``STATUS=`` once its modem is ready, and say ``STOPPING=1`` on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from drivers.clock import SystemClock
from drivers.sim import SimNetwork
from tests.e2e.daemon import write_config

WATCHDOG_USEC = 200_000


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    # sun_path holds at most 107 bytes: pytest's tmp_path can be longer than that.
    path = Path("/tmp") / f"gatewayd-notify-{os.getpid()}-{id(tmp_path)}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()
        path.unlink(missing_ok=True)


@pytest.fixture
async def net() -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=SystemClock(), seed=5)
    yield network
    await network.close()


class Datagrams:
    """Every notification received, parsed to ``{KEY: VALUE}``, in arrival order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.seen: list[dict[str, str]] = []

    async def until(
        self, predicate: str, *, after: int = -1, within: float = 15.0
    ) -> dict[str, str]:
        """The first datagram past position ``after`` whose ``KEY`` contains ``VALUE``."""
        key, _, value = predicate.partition("=")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(within):
                index = after + 1
                while True:
                    while index < len(self.seen):
                        fields = self.seen[index]
                        index += 1
                        if key in fields and (not value or value in fields[key]):
                            return fields
                    raw = await loop.sock_recv(self.sock, 4096)
                    text = raw.decode()
                    self.seen.append(dict(line.split("=", 1) for line in text.split("\n")))
        except TimeoutError:
            raise AssertionError(f"no {predicate!r} among {self.seen}") from None

    def position(self, fields: dict[str, str]) -> int:
        return next(i for i, f in enumerate(self.seen) if f is fields)


async def test_ready_status_watchdog_in_order_and_stopping_on_sigterm(
    net: SimNetwork, tmp_path: Path, notify_socket: socket.socket
) -> None:
    sim = await net.add_modem(profile="quectel", transport="tcp", latency=(0.0, 0.0))
    config = write_config(tmp_path, [sim.url])
    env = {
        **os.environ,
        "NOTIFY_SOCKET": notify_socket.getsockname(),
        "WATCHDOG_USEC": str(WATCHDOG_USEC),
    }
    env.pop("WATCHDOG_PID", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gatewayd",
        "run",
        "--config",
        str(config),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    got = Datagrams(notify_socket)
    try:
        ready = await got.until("READY=1")
        # Start-up is announced with the state systemctl status shows.
        assert "modems ready" in ready["STATUS"]
        assert "queue depth 0" in ready["STATUS"]
        first_ping = await got.until("WATCHDOG=1")
        assert got.position(ready) < got.position(first_ping)
        # The modem initialises after READY (its port opens in the background).
        up = await got.until("STATUS=1/1 modems ready")
        assert up["STATUS"] == "1/1 modems ready, queue depth 0"
        # Pings go on at half the timeout, each its own datagram.
        ping = first_ping
        for _ in range(3):
            ping = await got.until("WATCHDOG=1", after=got.position(ping))
        proc.send_signal(signal.SIGTERM)
        stopping = await got.until("STOPPING=1")
        assert got.position(up) < got.position(stopping)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
