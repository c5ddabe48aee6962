"""Three gateways (nodes) in one process share one PostgreSQL and send one queue.

The simulator's per-SIM log is the oracle: every part of every message left exactly one
SIM exactly once, and no SIM went over its limit.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from drivers.clock import ManualClock
from drivers.modem import Modem
from drivers.pdu import encode_status_report
from drivers.sim import SimNetwork
from drivers.sim.storage import PduKind
from gatewayd.config.model import Limits
from gatewayd.core import Gateway, MessageStatus, SubmitRequest
from gatewayd.store.postgres import PostgresStore
from tests.gatewayd.core.fakes import config, modem_config

LONG = "Su pedido ha salido del almacén y llegará mañana entre las 9 y las 14 h. " * 2


@pytest.fixture
async def net(clock: ManualClock) -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=clock, seed=5, default_latency=(0.0, 0.0))
    yield network
    await network.close()


async def until(clock: ManualClock, condition: Callable[[], bool], step: float = 0.5) -> None:
    """Move the clock in small steps until ``condition`` holds (I/O happens between)."""
    async with asyncio.timeout(20):
        while not condition():
            await clock.advance(step)
            await asyncio.sleep(0.005)


class Node:
    """One gatewayd: its own store connection pool, gateway and modems."""

    def __init__(self, gateway: Gateway, store: PostgresStore, modems: list[Modem]) -> None:
        self.gateway, self.store, self.modems = gateway, store, modems

    async def stop(self) -> None:
        await self.gateway.stop(drain_timeout=1)
        for m in self.modems:
            await m.stop()
        await self.store.close()


async def start_node(
    tmp_path: Path, dsn: str, clock: ManualClock, name: str, urls: list[str], limits: Limits
) -> Node:
    names = [f"{name}m{n}" for n in range(len(urls))]
    cfg = config(tmp_path, *(modem_config(n, limits=limits) for n in names))
    store = PostgresStore(dsn, node=name)
    await store.open()
    modems = [Modem(url, name=n, clock=clock) for url, n in zip(urls, names, strict=True)]
    for m in modems:
        await m.start()
    for m in modems:
        await m.wait_ready(5)
    gateway = Gateway(cfg, store, clock=clock, modems=modems)
    await gateway.start()
    return Node(gateway, store, modems)


async def test_three_nodes_send_one_queue_with_no_part_sent_twice(
    tmp_path: Path, dsn: str, clock: ManualClock, net: SimNetwork
) -> None:
    sims = [await net.add_modem("simcom", transport="pty") for _ in range(3)]
    # 5 parts a minute per SIM: one node alone could not send the queue in a minute, so
    # every node takes a share.
    limits = Limits(max_per_minute=5, max_per_hour=None, max_per_day=None)
    nodes = [
        await start_node(tmp_path, dsn, clock, f"n{i}", [sim.url], limits)
        for i, sim in enumerate(sims)
    ]
    try:
        ids = []
        for n in range(24):
            text = LONG if n % 6 == 0 else f"pedido {n}"
            # Submits arrive at every node; any node may send any of them.
            res = await nodes[n % 3].gateway.submit(
                SubmitRequest(to=f"+346110000{n:02d}", text=text)
            )
            ids.append((res.id, res.segments))
        expected = sum(segments for _, segments in ids)

        def sent() -> int:
            return sum(len(s.sent) for s in sims)

        await until(clock, lambda: sent() >= expected)
        for node in nodes:
            for worker in node.gateway.workers:
                await asyncio.wait_for(worker.idle.wait(), 5)
        log = [r for s in sims for r in s.sent]
        assert len(log) == expected
        once = Counter((r.recipient, r.part) for r in log)
        assert max(once.values()) == 1  # no part left two SIMs, none left one twice
        assert len({r.iccid for r in log}) == 3  # every node sent a share
        for sim in sims:
            times = sorted(r.time for r in sim.sent)
            window = timedelta(seconds=60)
            assert max(sum(1 for u in times if t <= u < t + window) for t in times) <= 5
        by_message: dict[str, set[str]] = {}
        for r in log:
            by_message.setdefault(r.recipient, set()).add(r.iccid)
        assert all(len(v) == 1 for v in by_message.values())  # a message's parts: one SIM
        for mid, _ in ids:
            view = await nodes[2].gateway.get_message(mid)
            assert view.status in (MessageStatus.SENT, MessageStatus.DELIVERED)
        observer = PostgresStore(dsn, node="observer")
        await observer.open()
        assert observer.queue_depth() == 0  # the shared counter, kept by every node
        await observer.close()
    finally:
        for node in nodes:
            await node.stop()


async def test_a_sim_found_on_two_nodes_is_driven_by_one(
    tmp_path: Path, dsn: str, clock: ManualClock, net: SimNetwork
) -> None:
    # The same ICCID in two modems on two hosts (a cloned or moved SIM): one node owns it.
    twins = [
        await net.add_modem("quectel", transport="pty", iccid="8934071000000000017")
        for _ in range(2)
    ]
    unlimited = Limits(max_per_minute=None, max_per_hour=None, max_per_day=None)
    nodes = [
        await start_node(tmp_path, dsn, clock, f"n{i}", [sim.url], unlimited)
        for i, sim in enumerate(twins)
    ]
    try:
        for n in range(6):
            await nodes[n % 2].gateway.submit(SubmitRequest(to=f"+346120000{n:02d}", text="x"))
        await until(clock, lambda: sum(len(s.sent) for s in twins) >= 6)
        counts = sorted(len(s.sent) for s in twins)
        assert counts == [0, 6]
        # The owner stops (its SIM is handed back): the other node drives it from now on.
        owner = 0 if twins[0].sent else 1
        await nodes[owner].stop()
        other = nodes.pop(1 - owner)
        nodes.clear()
        nodes.append(other)
        await other.gateway.submit(SubmitRequest(to="+34612000099", text="y"))
        await until(clock, lambda: len(twins[1 - owner].sent) >= 1)
        assert len(twins[owner].sent) == 6
    finally:
        for node in nodes:
            await node.stop()


async def test_a_sim_moved_mid_minute_keeps_its_limit_and_its_reports(
    tmp_path: Path, dsn: str, clock: ManualClock, net: SimNetwork
) -> None:
    # One SIM (one ICCID) moves from node A's modem to node B's within a minute. B started
    # before A sent, so only a reload of the SIM's log when B takes the SIM keeps the limit.
    iccid = "8934071000000000025"
    here, there = [await net.add_modem("simcom", transport="pty", iccid=iccid) for _ in range(2)]
    limits = Limits(max_per_minute=3, max_per_hour=None, max_per_day=None)
    a = await start_node(tmp_path, dsn, clock, "a", [here.url], limits)
    # A's worker has looked at the queue once: the SIM is A's before B starts.
    await asyncio.wait_for(a.gateway.workers[0].idle.wait(), 5)
    b = await start_node(tmp_path, dsn, clock, "b", [there.url], limits)
    nodes = [a, b]
    try:
        # The last of A's sends gets its report only after the move (on B's modem).
        net.add_handset("+34613000002", reports=False)
        ids = [
            (await a.gateway.submit(SubmitRequest(to=f"+3461300000{n}", text=f"m{n}"))).id
            for n in range(4)
        ]
        await until(clock, lambda: len(here.sent) >= 3)
        await a.stop()  # the SIM leaves A: A hands it back
        nodes.remove(a)
        await until(clock, lambda: len(there.sent) >= 1)
        first = min(r.time for r in here.sent)
        assert len(here.sent) == 3
        assert there.sent[0].time >= first + timedelta(seconds=60)
        # A's last part is reported on B, matched by ICCID in the database.
        last = max(here.sent, key=lambda r: r.time)
        report = encode_status_report(
            last.mr,
            last.recipient,
            scts=last.time,
            discharge_time=clock.now(),
            status=0,
            smsc=net.smsc,
        )
        there.deliver(report, PduKind.STATUS_REPORT)
        async with asyncio.timeout(20):
            while (await b.gateway.get_message(ids[2])).status is not MessageStatus.DELIVERED:
                await clock.advance(0.5)
                await asyncio.sleep(0.005)
    finally:
        for node in nodes:
            await node.stop()
