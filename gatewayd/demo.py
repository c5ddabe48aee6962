"""``gatewayd demo``: the daemon on a simulated modem network, no hardware needed.

The simulator runs in this process (``drivers.sim``: modems on pseudo-terminals with 1.5-4 s
of send latency, handsets that answer, status reports); the daemon reaches its modems through
their pty paths, the same serial code path as real hardware. The config it runs with is
written to ``DIR/gatewayd.toml`` next to a fresh API token (mode 0600), so the same setup
runs again with ``gatewayd run --config DIR/gatewayd.toml`` while a simulator is up.

``--nodes N`` (N >= 2) runs N daemons in this process on one PostgreSQL (a throwaway cluster
from :mod:`gatewayd.devpg`, or ``--database``): nodes ``node-1`` .. ``node-N``, each with its
own modems of the one simulated network and its own API port (the base port, +1 per node),
configs ``DIR/node-K.toml`` and one token. What one node accepts, any node's modem may send,
and every node's API shows it.
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
from urllib.parse import urlsplit, urlunsplit

import structlog

from drivers.clock import SystemClock
from drivers.sim import SimNetwork
from gatewayd.config import ConfigError, LoggingConfig, load_config
from gatewayd.daemon import Daemon
from gatewayd.devpg import DevPostgres, PostgresCommandError, PostgresUnavailable
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
SAMPLE_BODY = '{"to": "+34611111111", "text": "Tu pedido 1042 ya está en camino. ¡Gracias!"}'


def write_demo_config(
    data_dir: Path,
    listen: str,
    ports: list[str],
    token: str,
    *,
    database: str = "gatewayd.db",
    node_name: str = "demo",
    file_name: str = "gatewayd.toml",
    first_modem: int = 1,
) -> Path:
    """Write the token file (0600) and the config ``file_name`` for ``ports``; its path.

    The modems are named ``sim<first_modem>``, ``sim<first_modem + 1>``, ...: names stay
    distinct across the nodes of one database, where a message may name its modem.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    token_file = data_dir / "api-token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(token_file, 0o600)  # an existing file keeps its old mode through O_CREAT
    modems = "".join(
        f'\n[[modems]]\nname = "sim{first_modem + i}"\nport = "{port}"\nprofile = "auto"\n'
        "[modems.limits]\nmax_per_minute = 20\nmax_per_hour = 600\nmax_per_day = 5000\n"
        for i, port in enumerate(ports)
    )
    words = ", ".join(f'"{w}"' for w in STOP_WORDS)
    path = data_dir / file_name
    path.write_text(
        "# Written by `gatewayd demo`: the simulated network's modems, reached over ptys.\n"
        f'database = "{database}"\n'
        f'node_name = "{node_name}"\n\n'
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


def _handsets_text() -> str:
    return "\n".join(f"  {h.number}  {h.role}" for h in HANDSETS)


def banner(url: str, token: str, config_path: Path, modems: int) -> str:
    """What the demo prints once it serves: URL, token and ready-to-paste curl commands."""
    auth = f'-H "Authorization: Bearer {token}"'
    return f"""
gatewayd demo: {modems} simulated modem(s), API ready.
url: {url}
token: {token}
config: {config_path}

Send a message:
  curl -sS {auth} -H "Content-Type: application/json" \\
    -d '{SAMPLE_BODY}' {url}/v1/messages

Look at it (put the id from the answer in place of ID):
  curl -sS {auth} {url}/v1/messages/ID

Simulated handsets (any other number gets "delivered" after about 5 s):
{_handsets_text()}

Ctrl-C stops.
"""


@dataclass(frozen=True)
class DemoNode:
    """One running node of a several-node demo, as the banner shows it."""

    name: str
    url: str
    config_path: Path


def nodes_banner(nodes: list[DemoNode], token: str, database: str, modems: int) -> str:
    """The banner of the PostgreSQL demo: every node's URL, then curl lines that post
    through the second node (the first when alone) and read the message back through the
    last one."""
    auth = f'-H "Authorization: Bearer {token}"'
    urls = "\n".join(f"{n.name}: {n.url}" for n in nodes)
    configs = "\n".join(f"  {n.name}: {n.config_path}" for n in nodes)
    post, look = nodes[min(1, len(nodes) - 1)], nodes[-1]
    count, apis = ("1 node", "API") if len(nodes) == 1 else (f"{len(nodes)} nodes", "APIs")
    return f"""
gatewayd demo: {count} on one PostgreSQL, {modems} simulated modem(s) each, {apis} ready.
{urls}
token: {token}
database: {database}
configs:
{configs}

Send a message through {post.name}:
  curl -sS {auth} -H "Content-Type: application/json" \\
    -d '{SAMPLE_BODY}' {post.url}/v1/messages

Look at it through {look.name} (every node reads the one queue; put the id in place of ID):
  curl -sS {auth} {look.url}/v1/messages/ID

Simulated handsets (any other number gets "delivered" after about 5 s):
{_handsets_text()}

Ctrl-C stops (the nodes, the simulator, then a throwaway PostgreSQL).
"""


def _listen_for(listen: str, index: int) -> str:
    """Node ``index`` (0-based) listens on the base port + ``index``; port 0 stays 0 (free)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen: expected HOST:PORT, got {listen!r}")
    base = int(port)
    return f"{host}:{base + index if base else 0}"


def _without_password(url: str) -> str:
    """``url`` as the banner shows it: a password given in it is not printed."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _network(clock: SystemClock) -> SimNetwork:
    net = SimNetwork(clock=clock)
    for h in HANDSETS:
        net.add_handset(
            h.number,
            report=h.report,
            report_delay=(2.0, 5.0),
            replies=list(h.replies),
            reply_delay=3.0,
        )
    return net


async def _add_modems(
    net: SimNetwork, data_dir: Path, first: int, count: int, prefix: str
) -> list[str]:
    """``count`` modems numbered from ``first`` (0-based, across nodes): their pty links."""
    sims = [
        await net.add_modem(
            profile=PROFILES[i % len(PROFILES)],
            msisdn=f"+3460000{i + 1:04d}",
            transport="pty",
            latency=SEND_LATENCY,
            link_path=str(data_dir / f"{prefix}modem{i - first + 1}"),
        )
        for i in range(first, first + count)
    ]
    return [m.url for m in sims]


async def demo(data_dir: Path, listen: str, modems: int, out: TextIO) -> None:
    """Run the simulator and the daemon on it until SIGINT/SIGTERM (``data_dir`` absolute)."""
    clock = SystemClock()
    net = _network(clock)
    daemon: Daemon | None = None
    try:
        ports = await _add_modems(net, data_dir, 0, modems, "")
        token = secrets.token_urlsafe(32)
        config_path = write_demo_config(data_dir, listen, ports, token)
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


async def demo_nodes(
    data_dir: Path, listen: str, modems: int, nodes: int, database: str | None, out: TextIO
) -> None:
    """``nodes`` daemons in this process on one PostgreSQL (``database``, or a throwaway
    cluster), each with ``modems`` simulated modems of one network, until SIGINT/SIGTERM.

    In one process: every daemon has its own store pool, metrics registry and API listener,
    and the signal handlers are this function's, so nothing global is shared between them.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    clock = SystemClock()
    net = _network(clock)
    server: DevPostgres | None = None
    daemons: list[Daemon] = []
    try:
        if database is None:
            server = await DevPostgres.create()
            await server.start()
            database = server.dsn
        token = secrets.token_urlsafe(32)
        shown: list[DemoNode] = []
        for k in range(nodes):
            if stop.is_set():
                return  # a signal while starting: stop what runs, print no banner
            name = f"node-{k + 1}"
            ports = await _add_modems(net, data_dir, k * modems, modems, f"{name}-")
            path = write_demo_config(
                data_dir,
                _listen_for(listen, k),
                ports,
                token,
                database=database,
                node_name=name,
                file_name=f"{name}.toml",
                first_modem=k * modems + 1,
            )
            daemon = Daemon(load_config(path), clock=clock)
            # Tasks the daemon starts copy this context: each log event names its node.
            with structlog.contextvars.bound_contextvars(node=name):
                await daemon.start()  # on a failure it closed what it had opened
            daemons.append(daemon)
            host, port = daemon.address
            shown.append(DemoNode(name, f"http://{host}:{port}", path))
        if stop.is_set():
            return
        shown_db = _without_password(database)
        if server is not None:
            shown_db += " (throwaway, removed at exit)"
        print(nodes_banner(shown, token, shown_db, modems), file=out, flush=True)
        await stop.wait()
    finally:
        await asyncio.gather(*(_stop(d) for d in daemons))
        await net.close()
        if server is not None:
            await server.remove()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _stop(daemon: Daemon) -> None:
    with structlog.contextvars.bound_contextvars(node=daemon.config.node_name):
        daemon.request_stop()
        await daemon.stop()


def run_demo(
    *, data_dir: Path, listen: str, modems: int, nodes: int = 1, database: str | None = None
) -> int:
    """``gatewayd demo``: logs to stderr so stdout holds the banner; exit status.

    One node without ``database`` is the SQLite demo; more nodes (or a ``database`` URL)
    share one PostgreSQL.
    """
    configure_logging(LoggingConfig(), stream=sys.stderr)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)  # the modems' pty links go there too
        if nodes == 1 and database is None:
            asyncio.run(demo(data_dir.resolve(), listen, modems, sys.stdout))
        else:
            asyncio.run(demo_nodes(data_dir.resolve(), listen, modems, nodes, database, sys.stdout))
    except (ConfigError, PostgresUnavailable, PostgresCommandError) as exc:
        print(f"gatewayd demo: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"gatewayd demo: {exc}", file=sys.stderr)
        return 1
    return 0
