"""Dispatch: ordering, send_at, expiry, routing, stickiness, pools, multipart on one SIM."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from drivers.clock import ManualClock
from drivers.modem import ModemState
from gatewayd.config.model import RoutingRule
from gatewayd.core import Category, MessageStatus, Priority, SubmitRequest
from tests.gatewayd.core.fakes import FakeModem, Harness, config, modem_config, start

A = "+34600000001"
B = "+34600000002"
UK = "+447911123456"
LONG = "x" * 400  # three GSM 7-bit parts


async def single(tmp_path: Path, clock: ManualClock) -> Harness:
    return await start(
        config(tmp_path, modem_config("m1")), clock, [FakeModem("m1", "8934001", clock)]
    )


async def test_a_submitted_message_is_sent_and_marked_sent(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await single(tmp_path, clock)
    try:
        res = await h.gateway.submit(SubmitRequest(to=A, text="hello"))
        assert res.status is MessageStatus.QUEUED
        await h.modems["m1"].wait_sends(1)
        await h.idle()
        view = await h.gateway.get_message(res.id)
        assert view.status is MessageStatus.SENT
        assert view.sim == "8934001"
        assert [p.status for p in view.parts] == ["sent"]
        assert h.modems["m1"].sends[0].recipient == A
        assert h.modems["m1"].sends[0].text == "hello"
        assert h.gateway.queue_depth() == 0
        assert [e.status for e in view.history] == ["queued", "sending", "sending", "sent", "sent"]
        assert all(e.at == clock.now() for e in view.history)
    finally:
        await h.close()


async def test_order_is_priority_then_send_at_then_age(tmp_path: Path, clock: ManualClock) -> None:
    h = await single(tmp_path, clock)
    try:
        await h.gateway.pause("m1")
        now = clock.now()
        subs = [
            SubmitRequest(to=A, text="marketing", category=Category.MARKETING),
            SubmitRequest(to=A, text="tx-first"),
            SubmitRequest(to=A, text="tx-second"),
            SubmitRequest(to=A, text="low", priority=Priority.LOW),
            SubmitRequest(to=A, text="tx-earlier-send-at", send_at=now - timedelta(seconds=5)),
        ]
        for req in subs:
            await h.gateway.submit(req)
        assert h.gateway.queue_depth() == 5
        await h.gateway.resume("m1")
        await h.modems["m1"].wait_sends(5)
        assert [s.text for s in h.modems["m1"].sends] == [
            "tx-earlier-send-at",
            "tx-first",
            "tx-second",
            "marketing",
            "low",
        ]
    finally:
        await h.close()


async def test_send_at_in_the_future_waits_for_the_clock(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await single(tmp_path, clock)
    try:
        later = clock.now() + timedelta(seconds=60)
        await h.gateway.submit(SubmitRequest(to=A, text="later", send_at=later))
        await h.gateway.submit(SubmitRequest(to=B, text="now"))
        await h.modems["m1"].wait_sends(1)
        await h.advance(59)
        assert [s.text for s in h.modems["m1"].sends] == ["now"]
        await h.advance(1)
        await h.modems["m1"].wait_sends(2)
        assert h.modems["m1"].sends[1].text == "later"
        assert h.modems["m1"].sends[1].at == later
    finally:
        await h.close()


async def test_a_message_past_expires_at_expires_without_being_sent(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await single(tmp_path, clock)
    try:
        await h.gateway.pause("m1")
        res = await h.gateway.submit(
            SubmitRequest(to=A, text="soon stale", expires_at=clock.now() + timedelta(seconds=30))
        )
        await h.advance(31)
        await h.gateway.resume("m1")
        await h.idle()
        view = await h.gateway.get_message(res.id)
        assert view.status is MessageStatus.EXPIRED
        assert [p.status for p in view.parts] == ["expired"]
        assert h.modems["m1"].sends == []
        assert h.gateway.queue_depth() == 0
    finally:
        await h.close()


async def test_routing_explicit_modem_pool_prefix_rule_and_any(
    tmp_path: Path, clock: ManualClock
) -> None:
    cfg = config(
        tmp_path,
        modem_config("es1", pool="spain"),
        modem_config("uk1", pool="uk"),
        routing=(RoutingRule(prefix="+44", pool="uk"),),
    )
    es, uk = FakeModem("es1", "SIM-ES", clock), FakeModem("uk1", "SIM-UK", clock)
    h = await start(cfg, clock, [es, uk])
    try:
        await h.gateway.submit(SubmitRequest(to=UK, text="by rule"))
        await h.gateway.submit(SubmitRequest(to=UK, text="by modem", modem="es1"))
        await h.gateway.submit(SubmitRequest(to=A, text="by pool", pool="uk"))
        await uk.wait_sends(2)
        await es.wait_sends(1)
        await h.idle()
        assert sorted(s.text for s in uk.sends) == ["by pool", "by rule"]
        assert [s.text for s in es.sends] == ["by modem"]
    finally:
        await h.close()


async def test_a_recipient_sticks_to_its_sim_while_that_modem_is_ready(
    tmp_path: Path, clock: ManualClock
) -> None:
    cfg = config(tmp_path, modem_config("m1"), modem_config("m2"))
    m1, m2 = FakeModem("m1", "SIM1", clock), FakeModem("m2", "SIM2", clock)
    h = await start(cfg, clock, [m1, m2])
    try:
        await h.gateway.submit(SubmitRequest(to=A, text="first", modem="m2"))
        await m2.wait_sends(1)
        await h.idle()
        for n in range(6):
            await h.gateway.submit(SubmitRequest(to=A, text=f"again {n}"))
        await m2.wait_sends(7)
        await h.idle()
        assert m1.sends == []
        m2.set_state(ModemState.GONE)
        await h.gateway.submit(SubmitRequest(to=A, text="m2 is gone"))
        await m1.wait_sends(1)
        assert m1.sends[0].text == "m2 is gone"
    finally:
        await h.close()


async def test_all_parts_of_a_message_go_through_one_sim(
    tmp_path: Path, clock: ManualClock
) -> None:
    cfg = config(tmp_path, modem_config("m1"), modem_config("m2"))
    m1, m2 = FakeModem("m1", "SIM1", clock), FakeModem("m2", "SIM2", clock)
    h = await start(cfg, clock, [m1, m2])
    try:
        ids = [
            (await h.gateway.submit(SubmitRequest(to=f"+3460000010{n}", text=LONG))).id
            for n in range(4)
        ]
        async with asyncio.timeout(5):
            while len(m1.sends) + len(m2.sends) < 12:
                await h.idle()
        for mid in ids:
            view = await h.gateway.get_message(mid)
            assert view.segments == 3
            assert view.status is MessageStatus.SENT
            assert len({p.modem_identity for p in view.parts}) == 1
        for modem in (m1, m2):
            by_ref: dict[str, list[int]] = {}
            for s in modem.sends:
                by_ref.setdefault(f"{s.recipient}/{s.concat.ref}", []).append(s.concat.seq)
            assert all(seqs == [1, 2, 3] for seqs in by_ref.values())
    finally:
        await h.close()
