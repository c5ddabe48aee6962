"""A submit to any node may name another node's modem or pool."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from drivers.clock import ManualClock
from gatewayd.core import Gateway, MessageStatus, SubmitRequest, ValidationError
from gatewayd.store.postgres import PostgresStore
from tests.gatewayd.core.fakes import FakeModem, config, modem_config


async def test_a_node_takes_a_message_for_another_nodes_modem_and_pool(
    tmp_path: Path, dsn: str, clock: ManualClock
) -> None:
    stores = [PostgresStore(dsn, node=n) for n in ("a", "b")]
    modems = [FakeModem("shop-a-1", "SIM-A", clock), FakeModem("shop-b-1", "SIM-B", clock)]
    gateways = [
        Gateway(config(tmp_path, modem_config(m.name, pool=pool)), st, clock=clock, modems=[m])
        for st, m, pool in zip(stores, modems, ("es", "pt"), strict=True)
    ]
    a, b = gateways
    try:
        # Node b is up (its modems announced) when node a opens: a reads them at open,
        # and at every heartbeat afterwards.
        await stores[1].open()
        await b.start()
        await stores[0].open()
        await a.start()
        assert a.modem_names() == {"shop-a-1", "shop-b-1"}
        assert a.pool_names() >= {"es", "pt"}
        res = await a.submit(SubmitRequest(to="+34600000001", text="hola", modem="shop-b-1"))
        by_pool = await a.submit(SubmitRequest(to="+34600000002", text="olá", pool="pt"))
        worker = b.workers[0]
        async with asyncio.timeout(5):
            for mid in (res.id, by_pool.id):
                while (await b.get_message(mid)).status is not MessageStatus.SENT:
                    worker.idle.clear()
                    await worker.idle.wait()
        assert {s.recipient for s in modems[1].sends} == {"+34600000001", "+34600000002"}
        assert modems[0].sends == []
        with pytest.raises(ValidationError) as err:
            await a.submit(SubmitRequest(to="+34600000003", text="x", modem="nowhere"))
        assert err.value.field == "modem"
    finally:
        for gw in gateways:
            await gw.stop(drain_timeout=1)
        for store in stores:
            await store.close()
