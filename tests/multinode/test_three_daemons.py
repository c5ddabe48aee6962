"""Three ``gatewayd run`` processes on one PostgreSQL, each driving its own simulated modem.

The simulator's per-SIM log is the oracle (no assertion on timings): what left which SIM,
how often. Leases are short here (tests/multinode/nodes.py) so take-overs happen in-test.
"""

from __future__ import annotations

import asyncio
import glob
import json
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path

import pytest

from drivers.clock import SystemClock
from drivers.pdu import encode_status_report
from drivers.sim import SimNetwork
from drivers.sim.modem import SimModem
from drivers.sim.storage import PduKind
from tests.e2e.daemon import running_daemon
from tests.multinode.nodes import (
    LONG,
    copies,
    messages,
    node_config,
    nodes,
    ready,
    wait_lines,
)
from tests.multinode.pgserver import own_server
from tests.needs import missing

MIGRATIONS = Path(__file__).resolve().parents[2] / "gatewayd" / "store" / "sql" / "postgres"


@pytest.fixture
async def net() -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=SystemClock(), seed=17, default_handset={"report_delay": 0.05})
    yield network
    await network.close()


async def three_modems(net: SimNetwork) -> list[SimModem]:
    return [
        await net.add_modem(profile=p, transport="tcp", latency=(0.05, 0.05))
        for p in ("simcom", "quectel", "huawei")
    ]


async def test_kill_9_of_a_node_with_claimed_parts_and_a_send_in_flight(
    net: SimNetwork, tmp_path: Path, dsn: str
) -> None:
    sims = await three_modems(net)
    sims[0].set_fault(hold_sends=True)  # node-1's first part stays in flight
    async with nodes(tmp_path, dsn, sims, failover_wait=2.0) as (a, b, c):
        ids = set()
        for i in range(9):
            to = f"+3461140{i:04d}"
            status, body = await b.call("POST", "/v1/messages", {"to": to, "text": LONG})
            assert (status, body["segments"]) == (202, 2), body
            ids.add(body["id"])
        # node-1 has claimed a 2-part message and part 1's Ctrl-Z is written.
        held = await sims[0].wait_event("held", timeout=20)
        a.proc.kill()
        await a.proc.wait()
        # The network had the PDU: the part leaves, though its host is dead.
        sims[0].set_fault(hold_sends=False)
        await sims[0].wait_sent(1, timeout=10)
        final = await messages(c, ids, within=60)
    assert max(copies(net).values()) == 1  # no part of any concatenation left twice
    [in_flight] = sims[0].sent
    assert (in_flight.recipient, in_flight.part) == (held.detail, 1)
    for msg in final.values():
        assert msg["status"] in ("sent", "delivered"), msg
        others = [r for r in net.sent if r.recipient == msg["to"] and r.iccid != sims[0].iccid]
        # Every claimed part went once from the other nodes' SIMs, under one reference.
        assert sorted(r.part for r in others) == [1, 2], msg
        assert len({r.concat_ref for r in others}) == 1
        if msg["to"] == held.detail:
            # DESIGN (multipart and failover): node-1's SIM did not come back within
            # failover_wait, so the whole message went again under a new reference and
            # the recipient may hold node-1's part 1 as a stray part.
            assert others[0].concat_ref != in_flight.concat_ref
            assert msg["stray_part_possible"] is True
        else:
            assert msg["stray_part_possible"] is False


async def test_a_node_stopped_past_its_lease_sends_nothing_more_and_its_late_write_is_refused(
    net: SimNetwork, tmp_path: Path, dsn: str
) -> None:
    sims = await three_modems(net)
    sims[0].set_fault(hold_sends=True)
    async with nodes(tmp_path, dsn, sims, failover_wait=2.0) as (a, b, c):
        ids = set()
        for i in range(6):
            to = f"+3461150{i:04d}"
            status, body = await b.call("POST", "/v1/messages", {"to": to, "text": LONG})
            assert status == 202, body
            ids.add(body["id"])
        held = await sims[0].wait_event("held", timeout=20)
        a.proc.send_signal(signal.SIGSTOP)
        try:
            # Past node-1's claim lease the others take its message over and send it whole.
            final = await messages(b, ids, within=60)
        finally:
            # Its modem answers +CMGS while it is stopped; it reads the answer on waking.
            sims[0].set_fault(hold_sends=False)
            a.proc.send_signal(signal.SIGCONT)
        line = await a.wait_line('"dispatch.claim_lost"', within=20)
        # Awake, node-1 is a working node again: it takes new work.
        status, body = await a.call(
            "POST", "/v1/messages", {"to": "+34611509999", "text": "hola", "modem": "node-1-m1"}
        )
        assert status == 202, body
        await messages(c, {body["id"]}, within=30)
    mine = [(r.recipient, r.part) for r in sims[0].sent]
    # Of the message it lost, node-1's SIM sent only the part already in flight.
    assert mine == [(held.detail, 1), ("+34611509999", 1)]
    assert max(copies(net).values()) == 1
    lost = next(m for m in final.values() if m["to"] == held.detail)
    assert lost["id"] in line
    assert lost["stray_part_possible"] is True
    # Its late answer was refused: the message's parts are the other node's resend.
    assert {p["sim"] for p in lost["parts"]} != {sims[0].iccid}


async def test_a_stop_on_another_node_aborts_a_part_held_at_the_prompt(
    net: SimNetwork, tmp_path: Path, dsn: str
) -> None:
    sims = await three_modems(net)
    sims[0].set_fault(hold_prompt=True)
    to = "+34611600001"
    async with nodes(tmp_path, dsn, sims) as (a, b, _c):
        status, body = await a.call(
            "POST", "/v1/messages", {"to": to, "text": "Tu pedido ha salido", "modem": "node-1-m1"}
        )
        assert status == 202, body
        # node-1 marked the part sending and waits for its modem's prompt.
        await sims[0].wait_event("prompt_held", timeout=20)
        await net.inject_inbound(sims[1].msisdn, to, "Baja")
        await b.wait_for("/v1/optouts", lambda page: [o["number"] for o in page["items"]] == [to])
        await a.wait_line('"optout.changed_elsewhere"', within=10)
        sims[0].set_fault(hold_prompt=False)
        [msg] = (await messages(a, {body["id"]}, within=20)).values()
    assert (msg["status"], msg["error_code"]) == ("cancelled", "opted_out")
    assert sims[0].sent == []  # aborted with Esc at the prompt
    received = [m.text for m in net.handset(to).received]
    assert received == ["Baja confirmada"]  # node-2's confirmation, nothing else


async def test_one_idempotency_key_posted_a_thousand_times_over_three_nodes(
    net: SimNetwork, tmp_path: Path, dsn: str
) -> None:
    sims = await three_modems(net)
    body = {"to": "+34611700001", "text": "Tu código es 4711"}
    async with nodes(tmp_path, dsn, sims) as running:

        async def post(i: int) -> tuple[int, str, bool]:
            status, answer = await running[i % 3].call(
                "POST", "/v1/messages", body, **{"Idempotency-Key": "order-1042-otp"}
            )
            return status, answer["id"], answer["duplicate"]

        answers = await asyncio.gather(*(post(i) for i in range(1000)))
        status, other = await running[1].call(
            "POST",
            "/v1/messages",
            {**body, "text": "Otro texto"},
            **{"Idempotency-Key": "order-1042-otp"},
        )
        [msg] = (await messages(running[2], {answers[0][1]}, within=30)).values()
        page = await running[0].call("GET", "/v1/messages?limit=500")
    assert {mid for _, mid, _ in answers} == {msg["id"]}
    assert {s for s, _, _ in answers} == {202}
    assert [d for _, _, d in answers].count(False) == 1  # created once, then returned as is
    assert status == 422, other
    assert [m["id"] for m in page[1]["items"]] == [msg["id"]]
    assert [(r.recipient, r.text) for r in net.sent] == [(body["to"], body["text"])]


async def test_three_nodes_started_at_once_on_an_empty_database_migrate_once(
    net: SimNetwork, tmp_path: Path, dsn: str
) -> None:
    sims = await three_modems(net)
    configs = [
        node_config(tmp_path / f"node-{i}", [sim.url], dsn, f"node-{i}")
        for i, sim in enumerate(sims, 1)
    ]
    async with AsyncExitStack() as stack:
        running = await asyncio.gather(
            *(stack.enter_async_context(running_daemon(cfg)) for cfg in configs)
        )
        for d in running:
            await ready(d)
    applied = [
        json.loads(line)["name"] for d in running for line in d.lines if '"store.migrated"' in line
    ]
    migrations = sorted(p.name for p in MIGRATIONS.glob("*.sql"))
    assert sorted(applied) == migrations  # each migration applied by exactly one node


def faketime(offset: str) -> dict[str, str]:
    """The environment that runs a process with its clock ``offset`` off (libfaketime)."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        why = "libfaketime is not installed (Debian package faketime; scripts/test installs it)"
        missing(why)
    # Only the wall clock moves: the event loop's monotonic clock stays true.
    return {"LD_PRELOAD": found[0], "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


async def test_a_node_whose_clock_is_two_minutes_behind_changes_nothing(
    net: SimNetwork, tmp_path: Path, dsn: str
) -> None:
    behind = await net.add_modem(profile="quectel", transport="tcp", latency=(0.05, 0.05))
    env = [{}, faketime("-2m")]
    # node-1 takes the API traffic only; node-2, two minutes behind, drives the one SIM.
    async with nodes(tmp_path, dsn, [None, behind], env=env, per_minute=2) as (a, b):
        # The node really runs two minutes behind; it reads the database's time instead.
        line = json.loads(await b.wait_line('"store.clock_offset"'))
        assert 115 < line["seconds"] < 125
        # Messages accepted by the punctual node, for the late node's SIM: due at once
        # there too (with its own clock they would wait two minutes).
        ids = set()
        for i in range(3):
            status, body = await a.call(
                "POST",
                "/v1/messages",
                {"to": f"+3461180000{i}", "text": f"Pedido {i}"},
            )
            assert status == 202, body
            ids.add(body["id"])
        final = await messages(b, ids, within=90)
    times = sorted(r.time for r in behind.sent)
    assert len(times) == 3
    # Its limit (2 a minute) holds by the true clock: the third waited for the window.
    assert (times[2] - times[0]).total_seconds() >= 60
    for msg in final.values():
        [record] = [r for r in behind.sent if r.recipient == msg["to"]]
        stamped = datetime.fromisoformat(msg["parts"][0]["sent_at"])
        assert abs((stamped - record.time).total_seconds()) < 10  # the true time, not -2 min


async def test_postgresql_stopped_under_load_then_started_loses_and_doubles_nothing(
    net: SimNetwork, tmp_path: Path
) -> None:
    sims = await three_modems(net)
    # A claim outlives the outage here: what a node was sending stays its own.
    async with (
        own_server() as server,
        nodes(tmp_path, server.dsn, sims, claim_lease=120.0) as running,
    ):
        ids = set()
        for i in range(30):
            text = LONG if i % 3 == 0 else f"Pedido {i} en camino"
            status, body = await running[i % 3].call(
                "POST", "/v1/messages", {"to": f"+3461190{i:04d}", "text": text}
            )
            assert status == 202, body
            ids.add(body["id"])
        await net.modem(sims[0].id).wait_sent(2, timeout=20)
        await server.stop()  # pg_ctl stop -m immediate, mid-queue
        at_stop = {s.id: len(s.sent) for s in sims}
        for d in running:
            # Every node has looked for work again since, and renewed its heartbeat
            # (every 3 s here), and failed.
            await wait_lines(d, '"dispatch.step_failed"', 2, within=30)
            await wait_lines(d, '"store.heartbeat_failed"', 1, within=30)
        while_down = {s.id: len(s.sent) for s in sims}
        await server.start()
        final = await messages(running[0], ids, within=90)
    # Only a part already at the modem when the server died may still have left.
    for sim in sims:
        assert while_down[sim.id] - at_stop[sim.id] <= 1, sim.id
    assert len(net.sent) == sum(m["segments"] for m in final.values())  # nothing lost
    assert max(copies(net).values()) == 1  # nothing twice
    for msg in final.values():
        # Answers the database missed were journaled and written once it was back.
        assert msg["status"] in ("sent", "delivered"), msg


async def test_a_sim_moved_between_daemons_mid_minute_keeps_its_limit_and_its_report(
    net: SimNetwork, tmp_path: Path, dsn: str
) -> None:
    # One SIM (one ICCID) in a modem on node-1's host, then in one on node-2's.
    iccid = "8934071000000000033"
    here, there = [
        await net.add_modem("simcom", transport="tcp", iccid=iccid, latency=(0.05, 0.05))
        for _ in range(2)
    ]
    net.add_handset("+34612100002", reports=False)  # its report comes after the move
    configs = [
        node_config(tmp_path / f"node-{i}", [sim.url], dsn, f"node-{i}")
        for i, sim in ((1, here), (2, there))
    ]
    for cfg in configs:
        cfg.write_text(cfg.read_text().replace("max_per_minute = 100", "max_per_minute = 3"))
    async with AsyncExitStack() as node_1:
        a = await node_1.enter_async_context(running_daemon(configs[0]))
        await a.wait_line('"sim.taken"', within=20)
        async with running_daemon(configs[1]) as b:
            await ready(b)  # ... and node-2 finds the same ICCID owned by node-1
            await b.wait_line('"sim.owned_elsewhere"', within=20)
            ids = []
            for n in range(4):
                status, body = await a.call(
                    "POST", "/v1/messages", {"to": f"+3461210000{n}", "text": f"m{n}"}
                )
                assert status == 202, body
                ids.append(body["id"])
            await here.wait_sent(3, timeout=20)
            await node_1.aclose()
            # node-1 stopped (SIGTERM): it handed the SIM back; node-2 takes it mid-minute.
            await b.wait_line('"sim.taken"', within=20)
            last = max(here.sent, key=lambda r: r.time)
            assert last.recipient == "+34612100002"
            report = encode_status_report(
                last.mr,
                last.recipient,
                scts=last.time,
                discharge_time=last.time,
                status=0,
                smsc=net.smsc,
            )
            there.deliver(report, PduKind.STATUS_REPORT)  # A's last part, reported on B
            final = await messages(b, set(ids), within=150)
    assert final[ids[2]]["status"] == "delivered"
    assert len(here.sent) == 3
    assert len(there.sent) == 1
    times = sorted(r.time for r in here.sent + there.sent)
    # No 60 s window holds more than 3 of the SIM's parts, on whichever node they left.
    assert all((times[i + 3] - times[i]).total_seconds() >= 60 for i in range(len(times) - 3))
