"""Two nodes, one PostgreSQL: each runs a gateway and a flow engine on its own stores (and
``open_flow_store`` picks the flow store by the database string).

Events are posted to both nodes and due steps run on both at once; the database is the
oracle: each event ingested once, each step's message queued once, the minimum gap and the
marketing cap held per number, an erasure on one node honoured by the other.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import tomllib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from drivers.clock import ManualClock
from gatewayd.core import Gateway, OptedOut, SubmitRequest
from gatewayd.flows import FlowEngine, parse_event
from gatewayd.flows import engine as engine_module
from gatewayd.flows.load import parse_flows
from gatewayd.store import (
    Category,
    NewMessage,
    NewPart,
    OptOutScope,
    Priority,
    RecipientOptedOut,
    SqliteStore,
)
from gatewayd.store.flows_base import EnrolmentStatus
from gatewayd.store.flows_open import open_flow_store
from gatewayd.store.flows_postgres import PostgresFlowStore
from gatewayd.store.flows_sqlite import SqliteFlowStore
from gatewayd.store.postgres import PostgresStore
from gatewayd.store.timefmt import from_db
from tests.gatewayd.core.fakes import FakeModem, config, modem_config
from tests.gatewayd.flows.harness import event, settings
from tests.multinode.pgdb import fresh_schema

GAP = 600.0
DAY = 86_400.0
CUSTOMERS = 8

FLOWS = """
[templates.c]
es = "Aviso C {{ order.id }}"
[templates.d]
es = "Aviso D {{ order.id }}"
[templates.a]
es = "Oferta A {{ order.id }}"
[templates.b]
es = "Oferta B {{ order.id }}"
[[flows]]
name = "notice_c"
trigger = "order.shipped"
steps = [{ send = "c" }, { wait = "1h" }, { send = "c", name = "again_c" }]
[[flows]]
name = "notice_d"
trigger = "order.shipped"
steps = [{ send = "d" }]
[[flows]]
name = "promo_a"
trigger = "order.delivered"
category = "marketing"
steps = [{ send = "a" }]
[[flows]]
name = "promo_b"
trigger = "order.delivered"
category = "marketing"
steps = [{ send = "b" }]
"""


@dataclass
class Node:
    """One gatewayd: its gateway store, gateway, fake modem, flow store and engine."""

    core: PostgresStore
    gateway: Gateway
    flows: PostgresFlowStore
    engine: FlowEngine

    async def stop(self) -> None:
        await self.engine.stop()
        await self.flows.close()
        await self.gateway.stop(drain_timeout=1.0)
        await self.core.close()


async def start_node(tmp_path: Path, dsn: str, clock: ManualClock, name: str) -> Node:
    cfg = config(tmp_path, modem_config(f"{name}1"))
    core = PostgresStore(dsn, node=name, poll_seconds=3600.0)
    await core.open()
    gateway = Gateway(cfg, core, clock=clock, modems=[FakeModem(f"{name}1", f"SIM-{name}", clock)])
    await gateway.start()
    flows = PostgresFlowStore(dsn, node=name)
    await flows.open()
    engine = FlowEngine(
        gateway,
        flows,
        parse_flows(tomllib.loads(FLOWS)),
        settings(marketing_per_day=1, min_gap_seconds=GAP),
        clock=clock,
    )
    return Node(core, gateway, flows, engine)


@pytest.fixture
async def nodes(tmp_path: Path, clock: ManualClock) -> AsyncIterator[tuple[Node, Node]]:
    async with fresh_schema() as dsn:
        a = await start_node(tmp_path, dsn, clock, "a")
        b = await start_node(tmp_path, dsn, clock, "b")
        try:
            yield a, b
        finally:
            await a.stop()
            await b.stop()


def phone(n: int) -> str:
    return f"+346000001{n:02d}"


async def post_to_both(a: Node, b: Node, type: str, clock: ManualClock) -> list[bool]:
    """Post one event per customer to both nodes at once; per event, who ingested it."""
    took = []
    for n in range(CUSTOMERS):
        body = event(type, at=clock.now(), customer=f"c-{n}", phone=phone(n), order=f"O-{n}")
        first = parse_event(body, region="ES", now=clock.now())
        second = parse_event(body, region="ES", now=clock.now())
        out = await asyncio.gather(a.engine.post_event(first), b.engine.post_event(second))
        took.append(sum(not o.duplicate for o in out) == 1)
    return took


async def run_both(a: Node, b: Node) -> None:
    """Run what is due on both nodes at once, until neither finds anything."""
    for _ in range(50):
        await asyncio.gather(a.engine.run_due(), b.engine.run_due())
        due = await a.flows.next_due()
        if due is None or due > a.engine.clock.now():
            return
    raise AssertionError("due steps left after 50 rounds")


async def messages(node: Node) -> list[dict[str, Any]]:
    rows = await node.flows._all(
        "SELECT recipient, category, send_at, metadata FROM messages ORDER BY seq"
    )
    return [dict(r) | {"metadata": json.loads(r["metadata"])} for r in rows]


async def test_steps_posted_and_run_on_two_nodes_queue_each_message_once_within_caps(
    nodes: tuple[Node, Node], clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = nodes
    # One enrolment per claim: the two nodes take turns at the due list (and contend).
    monkeypatch.setattr(engine_module, "BATCH", 1)
    claimed: Counter[str] = Counter()
    for node, name in ((a, "a"), (b, "b")):
        take = node.flows.claim_due

        async def counting(now: Any, limit: int, take: Any = take, name: str = name) -> Any:
            got = await take(now, limit)
            claimed[name] += len(got)
            return got

        node.flows.claim_due = counting  # type: ignore[method-assign]

    assert all(await post_to_both(a, b, "order.shipped", clock))
    events = await a.flows._all("SELECT event_id, processed FROM flow_events")
    assert len(events) == CUSTOMERS
    assert all(r["processed"] == 1 for r in events)
    await run_both(a, b)
    await clock.advance(3600.0)
    await run_both(a, b)
    assert all(await post_to_both(a, b, "order.delivered", clock))
    await run_both(a, b)

    sent = await messages(a)
    # notice_c twice (two steps), notice_d, promo_a and promo_b: once each per customer.
    assert len(sent) == 5 * CUSTOMERS
    per_step = Counter((m["metadata"]["enrolment"], m["metadata"]["step"]) for m in sent)
    assert set(per_step.values()) == {1}
    records = await a.flows._all(
        "SELECT enrolment_id, step, COUNT(*) AS n FROM flow_sends GROUP BY enrolment_id, step"
    )
    assert len(records) == 5 * CUSTOMERS
    assert {r["n"] for r in records} == {1}
    timeline = await a.flows._all(
        "SELECT customer_id, flow, step, COUNT(*) AS n FROM customer_timeline"
        " WHERE what IN ('sent', 'deferred') GROUP BY customer_id, flow, step"
    )
    assert len(timeline) == 5 * CUSTOMERS
    assert {r["n"] for r in timeline} == {1}
    for n in range(CUSTOMERS):
        mine = [m for m in sent if m["recipient"] == phone(n)]
        times = sorted(m["send_at"] for m in mine)
        gaps = [(from_db(t2) - from_db(t1)).total_seconds() for t1, t2 in itertools.pairwise(times)]
        assert min(gaps) >= GAP, (phone(n), times)
        promos = sorted(from_db(m["send_at"]) for m in mine if m["category"] == "marketing")
        assert promos[1] - promos[0] >= timedelta(days=1)  # one marketing message a day
    enrolments = await a.flows._all("SELECT status, claim_node FROM flow_enrolments")
    assert {r["status"] for r in enrolments} == {EnrolmentStatus.DONE.value}
    assert {r["claim_node"] for r in enrolments} == {None}
    # Both nodes ran steps: the claims were contended, not one node's alone.
    assert claimed["a"] > 0
    assert claimed["b"] > 0
    assert claimed["a"] + claimed["b"] == 5 * CUSTOMERS  # c (twice), d, a, b: once each


async def test_a_step_whose_node_stalled_past_its_lease_is_run_by_the_other_node(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with fresh_schema() as dsn:
        a = await start_node(tmp_path, dsn, clock, "a")
        b = await start_node(tmp_path, dsn, clock, "b")
        try:
            body = event("order.shipped", at=clock.now(), customer="c-1", phone=phone(1))
            await a.engine.post_event(parse_event(body, region="ES", now=clock.now()))
            taken = await a.flows.claim_due(clock.now(), 10)
            assert len(taken) == 2
            assert await b.flows.claim_due(clock.now(), 10) == []  # a's lease holds
            # a stalls: its lease (database clock) runs out and b takes the steps over.
            await expire_leases(a, "flow_enrolments")
            again = await b.flows.claim_due(clock.now(), 10)
            assert {e.id for e in again} == {e.id for e in taken}
            for e in again:
                await b.flows.move(
                    e.id,
                    status=EnrolmentStatus.DONE,
                    step=9,
                    due_at=None,
                    waiting_for=None,
                    now=clock.now(),
                )
            # a wakes up and moves them: its claim is gone, so nothing changes.
            for e in taken:
                await a.flows.move(
                    e.id,
                    status=EnrolmentStatus.ACTIVE,
                    step=1,
                    due_at=clock.now(),
                    waiting_for=None,
                    now=clock.now(),
                )
                now_at = await a.flows.enrolment(e.id)
                assert now_at is not None
                assert (now_at.status, now_at.step) == (EnrolmentStatus.DONE, 9)
        finally:
            await a.stop()
            await b.stop()


async def test_an_event_left_unprocessed_by_a_dead_node_is_recovered_once(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with fresh_schema() as dsn:
        a = await start_node(tmp_path, dsn, clock, "a")
        b = await start_node(tmp_path, dsn, clock, "b")
        c = await start_node(tmp_path, dsn, clock, "c")
        try:
            body = event("order.shipped", at=clock.now(), customer="c-1", phone=phone(1))
            stored = parse_event(body, region="ES", now=clock.now())
            # a stores the event and dies before processing it.
            assert await a.flows.ingest(stored.stored, stored.customer, stored.order)
            assert await b.engine.recover() == 0  # a's lease still holds
            await expire_leases(a, "flow_events")
            assert len(await b.flows.unprocessed_events()) == 1
            # b holds it now: c neither recovers it nor ingests it when posted again.
            assert await c.flows.unprocessed_events() == []
            assert (await c.engine.post_event(stored)).duplicate
            assert await b.engine.recover() == 1
            rows = await b.flows._all("SELECT flow FROM flow_enrolments ORDER BY flow")
            assert [r["flow"] for r in rows] == ["notice_c", "notice_d"]
        finally:
            for node in (a, b, c):
                await node.stop()


async def expire_leases(node: Node, table: str) -> None:
    """As if the leases held in ``table`` ran out (the node stalled past them)."""
    await node.flows._p.execute(
        f"UPDATE {table} SET lease_until = clock_timestamp() - interval '1 second'"
        " WHERE lease_until IS NOT NULL"
    )


def new_message(to: str, clock: ManualClock) -> NewMessage:
    return NewMessage(
        id="m-after-erase",
        recipient=to,
        text="hola",
        category=Category.TRANSACTIONAL,
        priority=Priority.NORMAL,
        encoding="gsm7",
        parts=(NewPart(1, "00", 10),),
        replaced_chars=(),
        send_at=clock.now(),
        expires_at=None,
        modem=None,
        pool=None,
        metadata=None,
        callback_url=None,
        force_ucs2=False,
        smart=False,
        created_at=clock.now(),
    )


async def test_a_customer_erased_on_one_node_cannot_be_sent_to_from_the_other(
    nodes: tuple[Node, Node], clock: ManualClock
) -> None:
    a, b = nodes
    to = phone(3)
    body = event("order.shipped", at=clock.now(), customer="c-3", phone=to)
    await a.engine.post_event(parse_event(body, region="ES", now=clock.now()))
    await a.gateway.add_optout(to, scope=OptOutScope.ALL, source="keyword")
    assert await a.engine.erase_customer("c-3")
    # The opt-out lives on, as the number's hash, for every node's checks.
    assert await b.flows.optout_scope(to) == "all"
    [result] = await b.core.insert_messages([new_message(to, clock)])
    assert isinstance(result, RecipientOptedOut)
    with pytest.raises(OptedOut):
        await b.gateway.submit(SubmitRequest(to=to, text="¿Sigues ahí?"))
    b.gateway._optouts.clear()
    b.gateway._optouts.update(await b.core.optouts())  # as after a restart of b
    with pytest.raises(OptedOut):
        await b.gateway.submit(SubmitRequest(to=to, text="¿Sigues ahí?"))
    # The customer comes back through b: the flow's send is refused as opted out.
    again = event("order.shipped", at=clock.now(), customer="c-3", phone=to, order="O-9")
    await b.engine.post_event(parse_event(again, region="ES", now=clock.now()))
    await b.engine.run_due()
    rows = await b.flows._all("SELECT outcome FROM flow_sends WHERE customer_id = 'c-3'")
    assert {r["outcome"] for r in rows} == {"opted_out"}
    assert [m for m in await messages(a) if m["recipient"] == to] == []


async def test_open_flow_store_chooses_by_the_database_string(tmp_path: Path) -> None:
    path = str(tmp_path / "gw.db")
    core = SqliteStore(path)
    await core.open()  # the SQLite flow store opens the file the gateway's store migrated
    try:
        for database in (path, f"sqlite://{path}"):
            store = await open_flow_store(database)
            assert isinstance(store, SqliteFlowStore)
            assert await store.next_due() is None
            await store.close()
    finally:
        await core.close()
    with pytest.raises(ValueError, match="unsupported scheme 'mysql'"):
        await open_flow_store("mysql://db/gw")
    async with fresh_schema() as dsn:
        pg = await open_flow_store(dsn, node="a")
        try:
            assert isinstance(pg, PostgresFlowStore)
            assert pg.node == "a"
            assert await pg.next_due() is None  # migrated on open
        finally:
            await pg.close()
