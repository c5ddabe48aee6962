"""``gatewayd demo``: the daemon on a simulated modem network, no hardware needed.

The simulator runs in this process (``drivers.sim``: modems on pseudo-terminals with 1.5-4 s
of send latency, handsets that answer, status reports); the daemon reaches its modems through
their pty paths, the same serial code path as real hardware. The config it runs with is
written to ``DIR/gatewayd.toml`` next to a fresh API token (mode 0600), so the same setup
runs again with ``gatewayd run --config DIR/gatewayd.toml`` while a simulator is up.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import structlog

from drivers.clock import SystemClock
from drivers.sim import SimNetwork
from gatewayd.config import ConfigError, LoggingConfig, load_config
from gatewayd.daemon import Daemon
from gatewayd.logs import configure_logging

log = structlog.get_logger(__name__)

PROFILES = ("simcom", "quectel", "huawei", "generic")
SEND_LATENCY = (1.5, 4.0)


@dataclass(frozen=True)
class DemoHandset:
    """A scripted phone in the simulated network."""

    number: str
    role: str
    replies: tuple[str, ...] = ()
    report: str = "delivered"


HANDSETS = (
    DemoHandset("+34611111111", "replies to your message", ("¡Gracias! Paso a recogerlo mañana.",)),
    DemoHandset("+34622222222", 'answers "Baja": opted out at once', ("Baja",)),
    DemoHandset("+34633333333", "delivery fails (status report: failed)", report="failed"),
)
STOP_WORDS = ("STOP", "BAJA", "PARAR", "CANCELAR", "UNSUBSCRIBE", "ARRET")


def write_demo_config(data_dir: Path, listen: str, ports: list[str], token: str) -> Path:
    """Write the token file (0600) and ``gatewayd.toml`` for ``ports``; return its path."""
    data_dir.mkdir(parents=True, exist_ok=True)
    token_file = data_dir / "api-token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(token_file, 0o600)  # an existing file keeps its old mode through O_CREAT
    modems = "".join(
        f'\n[[modems]]\nname = "sim{i + 1}"\nport = "{port}"\nprofile = "auto"\n'
        "[modems.limits]\nmax_per_minute = 20\nmax_per_hour = 600\nmax_per_day = 5000\n"
        for i, port in enumerate(ports)
    )
    words = ", ".join(f'"{w}"' for w in STOP_WORDS)
    path = data_dir / "gatewayd.toml"
    path.write_text(
        "# Written by `gatewayd demo`: the simulated network's modems, reached over ptys.\n"
        'database = "gatewayd.db"\n'
        'node_name = "demo"\n\n'
        f'[api]\nlisten = "{listen}"\ntoken_files = ["api-token"]\n'
        f"{modems}\n"
        f"[keywords]\nstop = [{words}]\n"
        'start = ["START", "ALTA"]\nhelp = ["HELP", "AYUDA"]\n'
        'stop_reply = "Baja confirmada: no recibirás más mensajes."\n'
        'start_reply = "Alta confirmada."\n'
        'help_reply = "Mensajes de tu pedido. Responde BAJA para no recibir más."\n',
        encoding="utf-8",
    )
    return path


def banner(url: str, token: str, config_path: Path, modems: int) -> str:
    """What the demo prints once it serves: URL, token and ready-to-paste curl commands."""
    auth = f'-H "Authorization: Bearer {token}"'
    handsets = "\n".join(f"  {h.number}  {h.role}" for h in HANDSETS)
    body = '{"to": "+34611111111", "text": "Tu pedido 1042 ya está en camino. ¡Gracias!"}'
    return f"""
gatewayd demo: {modems} simulated modem(s), API ready.
url: {url}
token: {token}
config: {config_path}

Send a message:
  curl -sS {auth} -H "Content-Type: application/json" \\
    -d '{body}' {url}/v1/messages

Look at it (put the id from the answer in place of ID):
  curl -sS {auth} {url}/v1/messages/ID

Simulated handsets (any other number gets "delivered" after about 5 s):
{handsets}

Ctrl-C stops.
"""


async def demo(data_dir: Path, listen: str, modems: int, out: TextIO) -> None:
    """Run the simulator and the daemon on it until SIGINT/SIGTERM (``data_dir`` absolute)."""
    clock = SystemClock()
    net = SimNetwork(clock=clock)
    daemon: Daemon | None = None
    try:
        for h in HANDSETS:
            net.add_handset(
                h.number,
                report=h.report,
                report_delay=(2.0, 5.0),
                replies=list(h.replies),
                reply_delay=3.0,
            )
        sims = [
            await net.add_modem(
                profile=PROFILES[i % len(PROFILES)],
                msisdn=f"+3460000{i + 1:04d}",
                transport="pty",
                latency=SEND_LATENCY,
                link_path=str(data_dir / f"modem{i + 1}"),
            )
            for i in range(modems)
        ]
        token = secrets.token_urlsafe(32)
        config_path = write_demo_config(data_dir, listen, [m.url for m in sims], token)
        config = load_config(config_path)
        daemon = Daemon(config, clock=clock)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, daemon.request_stop)
        await daemon.start()
        host, port = daemon.address
        print(banner(f"http://{host}:{port}", token, config_path, modems), file=out, flush=True)
        await daemon.run_until_stopped()
    finally:
        if daemon is not None:
            await daemon.stop()
        await net.close()


def run_demo(*, data_dir: Path, listen: str, modems: int) -> int:
    """``gatewayd demo``: logs to stderr so stdout holds the banner; exit status."""
    configure_logging(LoggingConfig(), stream=sys.stderr)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)  # the modems' pty links go there too
        asyncio.run(demo(data_dir.resolve(), listen, modems, sys.stdout))
    except ConfigError as exc:
        print(f"gatewayd demo: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"gatewayd demo: {exc}", file=sys.stderr)
        return 1
    return 0
