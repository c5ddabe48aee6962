"""A node whose PostgreSQL goes away stops sending, keeps the answers it could not write in
its outcome journal, and resumes without sending twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from drivers.clock import ManualClock
from gatewayd.core import Gateway, MessageStatus, SubmitRequest
from gatewayd.core.journal import OutcomeJournal
from gatewayd.store.postgres import PostgresStore
from tests.gatewayd.core.fakes import FakeModem, config, modem_config
from tests.multinode.pgserver import Server, own_server


@dataclass
class Node:
    store: PostgresStore
    gateway: Gateway
    modem: FakeModem


@asynccontextmanager
async def node(
    tmp_path: Path, server: Server, clock: ManualClock, name: str, sim: str
) -> AsyncIterator[Node]:
    store = PostgresStore(server.dsn, node=name)
    await store.open()
    modem = FakeModem(f"m-{name}", sim, clock)
    gateway = Gateway(
        config(tmp_path, modem_config(modem.name)),
        store,
        clock=clock,
        modems=[modem],
        journal=OutcomeJournal(tmp_path / f"{name}.journal"),
    )
    await gateway.start()
    try:
        yield Node(store, gateway, modem)
    finally:
        await gateway.stop(drain_timeout=1)
        await store.close()


async def lose_database_at_third_send(server: Server, a: Node) -> list[str]:
    """Queue six messages; the server dies while the third is at the prompt: it still
    leaves the SIM, but its answer cannot be written. Returns the message ids."""
    stopped = asyncio.Event()

    async def lose_database() -> None:
        if a.modem.attempts == 3:
            await server.stop()
            stopped.set()

    a.modem.before_send = lose_database
    ids = [
        (await a.gateway.submit(SubmitRequest(to=f"+3460000001{n}", text=f"n{n}"))).id
        for n in range(6)
    ]
    async with asyncio.timeout(10):
        await stopped.wait()
    return ids


async def no_more_attempts(clock: ManualClock, a: Node) -> None:
    for _ in range(12):  # a minute of retries: not one more attempt at the modem
        await clock.advance(5)
        await asyncio.sleep(0.05)
    assert a.modem.attempts == 3
    assert len(a.modem.sends) == 3


async def test_the_answer_the_database_missed_is_written_when_it_returns(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with own_server() as server, node(tmp_path, server, clock, "a", "SIM1") as a:
        ids = await lose_database_at_third_send(server, a)
        await no_more_attempts(clock, a)
        # The third part's +CMGS answer waits on disk, not only in memory.
        [kept] = a.gateway.journal.pending
        assert kept.message_id == ids[2]
        assert (tmp_path / "a.journal").read_text().count("\n") == 1
        await server.start()
        async with asyncio.timeout(30):
            # The journal is retried every few seconds: its answer is written under the
            # claim (still this node's: its lease has not run out), then the queue goes on.
            while len(a.modem.sends) < 6 or a.gateway.journal.pending:
                await clock.advance(5)
                await asyncio.sleep(0.1)
        statuses = [(await a.gateway.get_message(mid)).status for mid in ids]
        assert statuses == [MessageStatus.SENT] * 6  # the third too: its answer was kept
        third = await a.gateway.get_message(ids[2])
        assert third.parts[0].mr == a.modem.sends[2].mr
        assert sorted(s.recipient for s in a.modem.sends) == sorted(
            {s.recipient for s in a.modem.sends}
        )
        assert not (tmp_path / "a.journal").exists()


async def test_a_journaled_answer_is_refused_once_another_node_took_the_message(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with own_server() as server:
        async with node(tmp_path, server, clock, "a", "SIM1") as a:
            ids = await lose_database_at_third_send(server, a)
            await no_more_attempts(clock, a)
        sent = list(a.modem.sends)
        assert (tmp_path / "a.journal").exists()
        # Node a went down with its journal on disk. While it is away the database comes
        # back, the claim's lease runs out and node b takes the message over.
        await server.start()
        conn = await asyncpg.connect(server.dsn)
        await conn.execute("UPDATE messages SET lease_until = clock_timestamp()")
        await conn.close()
        async with node(tmp_path, server, clock, "b", "SIM2") as b:
            async with asyncio.timeout(20):
                while (await b.gateway.get_message(ids[2])).status is MessageStatus.SENDING:
                    await clock.advance(5)
                    await asyncio.sleep(0.05)
            # a comes back: its late answer is refused (another node's claim now).
            async with node(tmp_path, server, clock, "a", "SIM1") as again:
                assert again.gateway.journal.pending == ()
                assert not (tmp_path / "a.journal").exists()
                others = ids[:2] + ids[3:]
                async with asyncio.timeout(20):
                    while [(await b.gateway.get_message(m)).status for m in others] != [
                        MessageStatus.SENT
                    ] * 5:
                        await clock.advance(5)
                        await asyncio.sleep(0.05)
                third = await again.gateway.get_message(ids[2])
                assert third.status is MessageStatus.UNCONFIRMED  # went, unknown: never again
                sent += b.modem.sends + again.modem.sends
        recipients = [s.recipient for s in sent]
        assert len(recipients) == len(set(recipients)) == 6  # the third left once, by a
