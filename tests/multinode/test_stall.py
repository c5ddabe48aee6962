"""A node stalled past its claim's lease (its lease made to run out) resumes."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from drivers.clock import ManualClock
from gatewayd.core import Gateway, SubmitRequest
from gatewayd.store import PartStatus, RouteQuery
from gatewayd.store.postgres import PostgresStore
from tests.gatewayd.core.fakes import FakeModem, config, modem_config

LONG = "x" * 200  # two parts


async def test_a_node_stalled_past_its_lease_sends_nothing_more_of_what_it_lost(
    tmp_path: Path, dsn: str, clock: ManualClock
) -> None:
    a = PostgresStore(dsn, node="a")
    b = PostgresStore(dsn, node="b", poll_seconds=0.0)
    modem = FakeModem("m1", "SIM-A", clock)
    await a.open()
    await b.open()
    gateway = Gateway(config(tmp_path, modem_config("m1")), a, clock=clock, modems=[modem])
    try:
        await gateway.start()

        async def stall() -> None:
            # Node a stops between marking part 1 sending and its Ctrl-Z, past its lease;
            # node b looks at the queue meanwhile and takes the claim over.
            modem.before_send = None
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(
                    "UPDATE messages SET lease_until = clock_timestamp() - interval '1 second'"
                    " WHERE lease_until IS NOT NULL"
                )
            finally:
                await conn.close()
            route = RouteQuery("SIM-B", "modem-b", "default", frozenset())
            await b.next_work(route, clock.now(), sticky=False)

        modem.before_send = stall
        res = await gateway.submit(SubmitRequest(to="+34600000001", text=LONG))
        assert res.segments == 2
        # a resumes: part 1 leaves (its Ctrl-Z was on its way), its answer cannot be written
        # (ClaimLost); part 1 is never sent again, part 2 goes once under a new claim.
        await modem.wait_sends(2)
        await gateway.workers[0].idle.wait()
        assert len(modem.sends) == 2
        assert modem.sends[0].pdu != modem.sends[1].pdu
        msg = await b.get_message(res.id)
        assert msg is not None
        assert [p.status for p in msg.parts] == [PartStatus.UNCONFIRMED, PartStatus.SENT]
        assert msg.parts[0].mr is None  # a's late write about part 1 was refused
    finally:
        await gateway.stop(drain_timeout=1)
        await a.close()
        await b.close()
