"""Two ``gatewayd run`` processes on one PostgreSQL, one killed by SIGKILL mid-queue.

The simulator's per-SIM log is the oracle: no part of any message leaves twice, the other
node sends the shared queue while the first is dead, and the first, restarted under its
node name, resolves the part it had in flight by the unknown-outcome rule at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drivers.clock import SystemClock
from drivers.sim import SimNetwork
from tests.e2e.daemon import running_daemon
from tests.multinode import nodes
from tests.multinode.nodes import ready, settled

LONG = "recogida disponible en tienda hasta el viernes a las ocho. " * 3  # 2 GSM-7 parts


@pytest.fixture
async def net() -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=SystemClock(), seed=13, default_handset={"report_delay": 0.05})
    yield network
    await network.close()


def node_config(directory: Path, port: str, dsn: str, node: str) -> Path:
    # The default claim lease: the restarted node, not another, resolves its own claim.
    return nodes.node_config(directory, [port], dsn, node, claim_lease=150.0)


async def test_a_node_killed_mid_queue_loses_nothing_and_sends_nothing_twice(
    net: SimNetwork, tmp_path: Path, dsn: str
) -> None:
    a = await net.add_modem(profile="simcom", transport="tcp", latency=(0.2, 0.2))
    b = await net.add_modem(profile="quectel", transport="tcp", latency=(0.2, 0.2))
    config_a = node_config(tmp_path / "a", a.url, dsn, "node-a")
    config_b = node_config(tmp_path / "b", b.url, dsn, "node-b")
    async with running_daemon(config_a) as da, running_daemon(config_b) as db:
        await ready(da)
        await ready(db)
        accepted: dict[str, dict[str, Any]] = {}
        for i in range(20):
            to = f"+3461130{i:04d}"
            text = f"Pedido {i}: " + (LONG if i % 3 == 0 else "ha salido del almacén")
            status, body = await da.call("POST", "/v1/messages", {"to": to, "text": text})
            assert status == 202, body
            accepted[to] = body
        await a.wait_sent(3, timeout=20)
        da.proc.kill()  # SIGKILL: no drain, no hand-back; its claim stays in the database
        await da.proc.wait()
        ids = {body["id"] for body in accepted.values()}

        def all_but_one_settled(page: Any) -> bool:
            seen = [m for m in page["items"] if m["id"] in ids]
            return len(seen) == len(ids) and sum(not settled(m) for m in seen) <= 1

        # The live node sends the shared queue; only what the dead node held waits.
        await db.wait_for("/v1/messages?limit=100", all_but_one_settled, within=30)
        async with running_daemon(config_a) as again:
            await ready(again)

            def all_settled(page: Any) -> bool:
                seen = [m for m in page["items"] if m["id"] in ids]
                return len(seen) == len(ids) and all(settled(m) for m in seen)

            page = await db.wait_for("/v1/messages?limit=100", all_settled, within=30)
    final = {m["to"]: m for m in page["items"] if m["id"] in ids}
    copies = Counter((r.recipient, r.part) for r in net.sent)
    assert max(copies.values()) == 1  # no part left a SIM twice
    assert {r.iccid for r in net.sent} == {a.iccid, b.iccid}
    for to, body in accepted.items():
        msg = final[to]
        parts = sorted(r.part for r in net.sent if r.recipient == to)
        if msg["status"] == "unconfirmed":
            # The part in flight at the kill: never resent (at-most-once).
            assert len(parts) <= body["segments"], msg
        else:
            assert msg["status"] in ("sent", "delivered"), msg
            assert parts == list(range(1, body["segments"] + 1)), msg
