"""Daemon nodes for the multi-node end-to-end tests: configs, start-up, oracles."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from drivers.sim import SimNetwork
from drivers.sim.modem import SimModem
from tests.e2e.daemon import Running, running_daemon, write_config

FINAL = frozenset({"delivered", "failed", "expired", "cancelled", "unconfirmed"})
LONG = "recogida disponible en tienda hasta el viernes a las ocho. " * 5  # 2 GSM-7 parts

# Short leases so that take-overs happen within a test (the default claim lease is 150 s).
CLAIM_LEASE = 4.0
CLUSTER = "[cluster]\nclaim_lease_seconds = {lease}\nnode_lease_seconds = 9.0\npoll_seconds = 0.5\n"


def node_config(
    directory: Path,
    ports: Sequence[str],
    dsn: str,
    node: str,
    *,
    failover_wait: float = 60.0,
    claim_lease: float = CLAIM_LEASE,
    extra: str = "",
) -> Path:
    """A node's config: its own modems, the shared database, short cluster leases."""
    directory.mkdir(parents=True)
    path = write_config(
        directory,
        list(ports),
        f"[sending]\nfailover_wait_seconds = {failover_wait}\nreport_timeout_seconds = 2.0\n"
        + CLUSTER.format(lease=claim_lease)
        + extra,
    )
    text = path.read_text().replace('database = "gw.db"', f'database = "{dsn}"')
    path.write_text(f'node_name = "{node}"\n' + text)
    return path


def settled(msg: dict[str, Any]) -> bool:
    """Nothing more will happen to the message (a sent one has its reports or timeouts)."""
    if msg["status"] == "sent":
        return all(p["status"] in ("delivered", "report_timeout") for p in msg["parts"])
    return msg["status"] in FINAL


async def ready(d: Running) -> None:
    """Wait until every modem of the node is ready."""
    await d.wait_for("/v1/modems", lambda b: all(m["state"] == "ready" for m in b["modems"]))


async def messages(
    d: Running, ids: set[str], *, within: float, done: Any = settled
) -> dict[str, dict[str, Any]]:
    """The messages ``ids`` as node ``d`` sees them, once ``done`` holds for each."""

    def all_done(page: Any) -> bool:
        seen = [m for m in page["items"] if m["id"] in ids]
        return len(seen) == len(ids) and all(done(m) for m in seen)

    page = await d.wait_for("/v1/messages?limit=500", all_done, within=within)
    return {m["id"]: m for m in page["items"] if m["id"] in ids}


def copies(net: SimNetwork) -> Counter[tuple[str, int, int | None]]:
    """How often each part of each concatenation (recipient, part, reference) left any SIM:
    the oracle of 'never twice'."""
    return Counter((r.recipient, r.part, r.concat_ref) for r in net.sent)


@asynccontextmanager
async def nodes(
    tmp_path: Path,
    dsn: str,
    modems: Sequence[SimModem | None],
    *,
    env: Sequence[dict[str, str]] = (),
    failover_wait: float = 60.0,
    claim_lease: float = CLAIM_LEASE,
    per_minute: int = 100,
) -> AsyncIterator[list[Running]]:
    """One daemon per modem (None: a node with no modem, API only), node-1..N, all on
    ``dsn``; stopped (SIGTERM) on exit."""
    async with AsyncExitStack() as stack:
        running = []
        for i, modem in enumerate(modems):
            name = f"node-{i + 1}"
            config = node_config(
                tmp_path / name,
                [modem.url] if modem else [],
                dsn,
                name,
                failover_wait=failover_wait,
                claim_lease=claim_lease,
            )
            # Modem names unique across nodes, so a message can name one node's modem.
            text = config.read_text().replace('name = "m1"', f'name = "{name}-m1"')
            config.write_text(
                text.replace("max_per_minute = 100", f"max_per_minute = {per_minute}")
            )
            node_env = env[i] if i < len(env) else {}
            running.append(await stack.enter_async_context(running_daemon(config, node_env)))
        for d in running:
            await ready(d)
        yield running


async def wait_lines(d: Running, text: str, count: int, *, within: float) -> None:
    """Wait until ``count`` output lines of ``d`` contain ``text``."""
    async with asyncio.timeout(within):
        while True:
            d.new_line.clear()
            if sum(text in line for line in d.lines) >= count:
                return
            await d.new_line.wait()
