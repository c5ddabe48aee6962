"""A STOP committed on one node while another node's modem waits at the ``> `` prompt."""

from __future__ import annotations

import asyncio
from pathlib import Path

from drivers.clock import ManualClock
from gatewayd.core import Gateway, MessageStatus, SubmitRequest
from gatewayd.store import OptOutScope
from gatewayd.store.postgres import PostgresStore
from tests.gatewayd.core.fakes import FakeModem, config, modem_config

NUMBER = "+34600000001"


async def test_an_opt_out_on_another_node_aborts_at_the_prompt(
    tmp_path: Path, dsn: str, clock: ManualClock
) -> None:
    stores = [PostgresStore(dsn, node=n) for n in ("a", "b")]
    modems = [FakeModem("m1", "SIM-A", clock), FakeModem("m2", "SIM-B", clock)]
    gateways = []
    for store, modem in zip(stores, modems, strict=True):
        await store.open()
        cfg = config(tmp_path, modem_config(modem.name))
        gateways.append(Gateway(cfg, store, clock=clock, modems=[modem]))
    heard = asyncio.Event()
    stores[0].on_optout(lambda number, scope: heard.set())
    try:
        for gw in gateways:
            await gw.start()

        async def stop_on_node_b() -> None:
            # Node a already marked the part sending; the STOP commits on node b now, and
            # node a hears of it before its modem shows the prompt.
            modems[0].before_send = None
            await gateways[1].add_optout(NUMBER)
            async with asyncio.timeout(5):
                await heard.wait()

        modems[0].before_send = stop_on_node_b
        res = await gateways[0].submit(SubmitRequest(to=NUMBER, text="hola", modem="m1"))
        await modems[0].wait_attempts(1)
        async with asyncio.timeout(5):
            while (await gateways[1].get_message(res.id)).status is not MessageStatus.CANCELLED:
                await gateways[0].workers[0].idle.wait()
                gateways[0].workers[0].idle.clear()
        assert modems[0].sends == []  # aborted at the prompt: nothing left the SIM
        view = await gateways[1].get_message(res.id)
        assert view.error_code == "opted_out"
        assert (await gateways[0].list_optouts()).items[0].scope == OptOutScope.ALL
    finally:
        for gw in gateways:
            await gw.stop(drain_timeout=1)
        for store in stores:
            await store.close()
