"""A node whose PostgreSQL goes away stops sending, and resumes without sending twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from drivers.clock import ManualClock
from gatewayd.core import Gateway, MessageStatus, SubmitRequest
from gatewayd.store.postgres import PostgresStore
from tests.gatewayd.core.fakes import FakeModem, config, modem_config
from tests.multinode.pgserver import own_server


async def test_a_node_that_loses_the_database_stops_sending(
    tmp_path: Path, clock: ManualClock
) -> None:
    async with own_server() as server:
        store = PostgresStore(server.dsn, node="a")
        await store.open()
        modem = FakeModem("m1", "SIM1", clock)
        gateway = Gateway(config(tmp_path, modem_config("m1")), store, clock=clock, modems=[modem])
        await gateway.start()
        stopped = asyncio.Event()

        async def lose_database() -> None:
            # The server dies while part 3 is at the prompt: it still leaves the SIM, but
            # its answer cannot be recorded.
            if modem.attempts == 3:
                await server.stop()
                stopped.set()

        modem.before_send = lose_database
        try:
            ids = [
                (await gateway.submit(SubmitRequest(to=f"+3460000001{n}", text=f"n{n}"))).id
                for n in range(6)
            ]
            async with asyncio.timeout(10):
                await stopped.wait()
            for _ in range(12):  # a minute of retries: not one more attempt at the modem
                await clock.advance(5)
                await asyncio.sleep(0.05)
            assert modem.attempts == 3
            assert len(modem.sends) == 3
            await server.start()
            # Its claim on message 3 is lost to this node's workers; let its lease run out.
            conn = await asyncpg.connect(server.dsn)
            await conn.execute("UPDATE messages SET lease_until = clock_timestamp()")
            await conn.close()
            async with asyncio.timeout(20):
                # Once a poll (a second) a worker's look at the queue takes it over.
                while (
                    len(modem.sends) < 5
                    or (await gateway.get_message(ids[2])).status is MessageStatus.SENDING
                ):
                    await clock.advance(5)
                    await asyncio.sleep(0.05)
            statuses = [(await gateway.get_message(mid)).status for mid in ids]
            assert statuses.count(MessageStatus.SENT) == 5
            assert statuses[2] is MessageStatus.UNCONFIRMED  # went, unrecorded: never again
            assert sorted(s.recipient for s in modem.sends) == sorted(
                {s.recipient for s in modem.sends}
            )
        finally:
            await gateway.stop(drain_timeout=1)
            await store.close()
