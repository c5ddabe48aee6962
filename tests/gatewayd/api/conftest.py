"""A real daemon (real Gateway, SQLite file, modem driver) on the simulator, for API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from drivers.clock import SystemClock
from drivers.sim import SimModem, SimNetwork
from gatewayd.config import load_config
from gatewayd.daemon import Daemon
from gatewayd.sdnotify import Notifier
from tests.gatewayd.api.client import ApiClient

TOKEN = "test-token-0123456789"


@dataclass
class Stack:
    api: ApiClient
    daemon: Daemon
    net: SimNetwork
    sim: SimModem
    dir: Path


def write_config(tmp_path: Path, port: str, extra: str = "") -> Path:
    (tmp_path / "token").write_text(TOKEN + "\n")
    path = tmp_path / "gatewayd.toml"
    path.write_text(
        'database = "gw.db"\n'
        '[api]\nlisten = "127.0.0.1:0"\ntoken_files = ["token"]\nmax_body_bytes = 65536\n'
        "max_batch = 5\n"
        f'[[modems]]\nname = "m1"\nport = "{port}"\npool = "es"\n'
        "[modems.limits]\nmax_per_minute = 100\nmax_per_hour = 1000\nmax_per_day = 10000\n"
        '[keywords]\nstop = ["STOP", "BAJA"]\nstart = ["START"]\n' + extra
    )
    return path


@pytest.fixture
def extra_config() -> str:
    """More TOML for the daemon's config (a test module overrides this fixture)."""
    return ""


@pytest.fixture
async def stack(tmp_path: Path, extra_config: str) -> AsyncIterator[Stack]:
    clock = SystemClock()
    net = SimNetwork(clock=clock, seed=7, default_handset={"report_delay": 0.05})
    sim = await net.add_modem(profile="simcom", transport="tcp", latency=(0.0, 0.0))
    daemon = Daemon(
        load_config(write_config(tmp_path, sim.url, extra_config)),
        clock=clock,
        notifier=Notifier(None),
    )
    try:
        await daemon.start()
        host, port = daemon.address
        async with aiohttp.ClientSession() as session:
            yield Stack(
                ApiClient(session, f"http://{host}:{port}", TOKEN), daemon, net, sim, tmp_path
            )
    finally:
        await daemon.stop()
        await net.close()
