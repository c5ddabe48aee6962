"""Failures: retries with backoff, permanent errors, SIM faults, modems going away, unknown
outcomes and what a crash left ``sending``."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from drivers.clock import ManualClock
from drivers.modem import ModemState, SendOutcomeUnknown
from gatewayd.config.model import SendingConfig, UnknownOutcomeRule, WebhookConfig
from gatewayd.core import Gateway, MessageStatus, SubmitRequest
from gatewayd.store import SqliteStore
from tests.gatewayd.core.fakes import FakeModem, Harness, cms, config, modem_config, start

A = "+34600000001"
LONG = "z" * 400  # three parts
HOOK = "http://127.0.0.1:9/hook"


def sending(**kw: object) -> SendingConfig:
    base = {"retry_base_seconds": 30.0, "retry_max_seconds": 100.0, "retry_max_attempts": 4}
    return SendingConfig(**{**base, **kw})  # type: ignore[arg-type]


async def two(tmp_path: Path, clock: ManualClock, **kw: object) -> Harness:
    cfg = config(
        tmp_path,
        modem_config("m1"),
        modem_config("m2"),
        sending=kw.pop("sending", sending()),
        webhooks=WebhookConfig(url=HOOK),
        **kw,
    )
    return await start(cfg, clock, [FakeModem("m1", "SIM1", clock), FakeModem("m2", "SIM2", clock)])


async def events(h: Harness) -> list[tuple[str, dict[str, object]]]:
    rows = await h.store.pending_webhooks()
    return [(r.event, json.loads(r.payload_json)["data"]) for r in rows]


async def test_temporary_errors_retry_with_exponential_backoff(
    tmp_path: Path, clock: ManualClock
) -> None:
    cfg = config(tmp_path, modem_config("m1"), sending=sending())
    m1 = FakeModem("m1", "SIM1", clock)
    m1.failures.extend([cms(42), cms(42), cms(42)])
    h = await start(cfg, clock, [m1])
    try:
        t0 = clock.now()
        res = await h.gateway.submit(SubmitRequest(to=A, text="congested"))
        await m1.wait_attempts(1)
        await h.idle()
        await h.advance(29)
        assert m1.attempts == 1
        await h.advance(1)  # 30 s, then 60 s, then 100 s (capped) after each failure
        await h.advance(60)
        await h.advance(100)
        await m1.wait_sends(1)
        assert [t - t0 for t in m1.attempt_times] == [
            timedelta(0),
            timedelta(seconds=30),
            timedelta(seconds=90),
            timedelta(seconds=190),
        ]
        await h.idle()
        view = await h.gateway.get_message(res.id)
        assert view.status is MessageStatus.SENT
        assert view.attempts == 3
    finally:
        await h.close()


async def test_retries_give_up_after_the_limit(tmp_path: Path, clock: ManualClock) -> None:
    cfg = config(tmp_path, modem_config("m1"), sending=sending(retry_max_attempts=2))
    m1 = FakeModem("m1", "SIM1", clock)
    m1.failures.extend([cms(42), cms(42)])
    h = await start(cfg, clock, [m1])
    try:
        res = await h.gateway.submit(SubmitRequest(to=A, text="never"))
        await m1.wait_attempts(1)
        await h.advance(30)
        await m1.wait_attempts(2)
        await h.idle()
        view = await h.gateway.get_message(res.id)
        assert view.status is MessageStatus.FAILED
        assert view.error_code == "cms_42"
        assert "Congestion" in (view.error_text or "")
        assert m1.sends == []
    finally:
        await h.close()


async def test_a_permanent_error_fails_the_message_with_code_and_meaning(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await two(tmp_path, clock)
    h.modems["m1"].failures.append(cms(1))
    h.modems["m2"].failures.append(cms(1))
    try:
        res = await h.gateway.submit(SubmitRequest(to=A, text="nobody there"))
        async with asyncio.timeout(5):
            while h.modems["m1"].attempts + h.modems["m2"].attempts < 1:
                await h.idle()
        await h.idle()
        view = await h.gateway.get_message(res.id)
        assert view.status is MessageStatus.FAILED
        assert view.error_code == "cms_1"
        assert view.error_text == "Unassigned (unallocated) number"
        assert h.modems["m1"].attempts + h.modems["m2"].attempts == 1
        assert [e for e, _ in await events(h)] == ["message.failed"]
    finally:
        await h.close()


async def test_a_sim_fault_takes_the_sim_out_and_hands_its_work_to_another(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await two(tmp_path, clock)
    m1, m2 = h.modems["m1"], h.modems["m2"]
    try:
        await h.gateway.pause("m2")
        m1.failures.append(cms(310))  # (U)SIM not inserted
        res = await h.gateway.submit(SubmitRequest(to=A, text="needs a working SIM"))
        await m1.wait_attempts(1)
        await h.idle()
        status = {v.name: v for v in h.gateway.modem_status()}
        assert status["m1"].out_of_service
        assert (await h.gateway.get_message(res.id)).status is MessageStatus.QUEUED
        await h.gateway.resume("m2")
        await m2.wait_sends(1)
        await h.idle()
        assert m1.sends == []
        view = await h.gateway.get_message(res.id)
        assert view.status is MessageStatus.SENT
        assert view.sim == "SIM2"
        assert view.attempts == 0  # the SIM's fault, not the message's
    finally:
        await h.close()


async def test_a_modem_going_away_mid_queue_loses_and_doubles_nothing(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await two(tmp_path, clock)
    m1, m2 = h.modems["m1"], h.modems["m2"]
    m1.gone_after = 3
    try:
        await h.gateway.pause("m2")
        ids = []
        for n in range(10):
            ids.append(
                (await h.gateway.submit(SubmitRequest(to=f"+3460000030{n}", text=f"#{n}"))).id
            )
        await m1.wait_sends(3)
        await h.idle()
        await h.gateway.resume("m2")
        await m2.wait_sends(7)
        await h.idle()
        texts = [s.text for s in m1.sends + m2.sends]
        assert sorted(texts) == sorted(f"#{n}" for n in range(10))
        for mid in ids:
            assert (await h.gateway.get_message(mid)).status is MessageStatus.SENT
        assert h.gateway.queue_depth() == 0
    finally:
        await h.close()


async def test_multipart_waits_for_its_sim_then_resends_whole_elsewhere(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await two(tmp_path, clock, sending=sending(failover_wait_seconds=600))
    m1, m2 = h.modems["m1"], h.modems["m2"]
    m1.gone_after = 1
    try:
        await h.gateway.pause("m2")
        res = await h.gateway.submit(SubmitRequest(to=A, text=LONG))
        await m1.wait_sends(1)
        await h.idle()
        await h.gateway.resume("m2")
        await h.advance(599)
        assert m2.sends == []  # bound to SIM1 while it may come back
        await h.advance(1)
        await m2.wait_sends(3)
        await h.idle()
        first_ref = m1.sends[0].concat
        refs = {s.concat for s in m2.sends}
        assert {(c.seq, c.total) for c in refs} == {(1, 3), (2, 3), (3, 3)}
        assert {c.ref for c in refs} != {first_ref.ref}
        view = await h.gateway.get_message(res.id)
        assert view.status is MessageStatus.SENT
        assert view.stray_part_possible
        assert {p.modem_identity for p in view.parts} == {"SIM2"}
    finally:
        await h.close()


async def test_multipart_continues_on_its_sim_when_it_returns_in_time(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await two(tmp_path, clock, sending=sending(failover_wait_seconds=600))
    m1, m2 = h.modems["m1"], h.modems["m2"]
    m1.gone_after = 1
    try:
        res = await h.gateway.submit(SubmitRequest(to=A, text=LONG, modem=None))
        async with asyncio.timeout(5):
            while not m1.sends and not m2.sends:
                await h.idle()
        first, other = (m1, m2) if m1.sends else (m2, m1)
        await h.idle()
        await h.advance(300)
        first.set_state(ModemState.READY)
        await first.wait_sends(3)
        await h.idle()
        assert other.sends == []
        assert [s.concat.seq for s in first.sends] == [1, 2, 3]
        assert (await h.gateway.get_message(res.id)).status is MessageStatus.SENT
    finally:
        await h.close()


async def test_unknown_outcome_is_unconfirmed_and_never_resent(
    tmp_path: Path, clock: ManualClock
) -> None:
    cfg = config(tmp_path, modem_config("m1"))
    m1 = FakeModem("m1", "SIM1", clock)
    m1.failures.append(SendOutcomeUnknown("no answer after Ctrl-Z"))
    h = await start(cfg, clock, [m1])
    try:
        res = await h.gateway.submit(SubmitRequest(to=A, text="maybe"))
        await m1.wait_attempts(1)
        await h.idle()
        await h.advance(3600)
        view = await h.gateway.get_message(res.id)
        assert view.status is MessageStatus.UNCONFIRMED
        assert [p.status for p in view.parts] == ["unconfirmed"]
        assert m1.attempts == 1
    finally:
        await h.close()


async def _crashed_mid_send(tmp_path: Path, clock: ManualClock) -> str:
    """Rows as a crash leaves them: message claimed, part 1 `sending`, no answer recorded."""
    cfg = config(tmp_path, modem_config("m1"))
    store = SqliteStore(cfg.database)
    await store.open()
    gw = Gateway(cfg, store, clock=clock, modems=[])
    res = await gw.submit(SubmitRequest(to=A, text="crash"))
    assert await store.claim(res.id, "SIM1", clock.now()) is not None
    await store.part_sending(res.id, 1, "SIM1", "m1", clock.now())
    await store.close()
    return res.id


async def test_a_part_left_sending_by_a_crash_becomes_unconfirmed(
    tmp_path: Path, clock: ManualClock
) -> None:
    mid = await _crashed_mid_send(tmp_path, clock)
    h = await start(config(tmp_path, modem_config("m1")), clock, [FakeModem("m1", "SIM1", clock)])
    try:
        await h.advance(60)
        view = await h.gateway.get_message(mid)
        assert view.status is MessageStatus.UNCONFIRMED
        assert [p.status for p in view.parts] == ["unconfirmed"]
        assert h.modems["m1"].attempts == 0
        assert h.gateway.queue_depth() == 0
    finally:
        await h.close()


async def test_at_least_once_resends_a_part_left_sending(
    tmp_path: Path, clock: ManualClock
) -> None:
    mid = await _crashed_mid_send(tmp_path, clock)
    rule = sending(unknown_outcome_transactional=UnknownOutcomeRule.AT_LEAST_ONCE)
    cfg = config(tmp_path, modem_config("m1"), sending=rule)
    h = await start(cfg, clock, [FakeModem("m1", "SIM1", clock)])
    try:
        await h.modems["m1"].wait_sends(1)
        await h.idle()
        assert (await h.gateway.get_message(mid)).status is MessageStatus.SENT
    finally:
        await h.close()


async def test_an_opt_out_while_sending_aborts_at_the_prompt(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await start(config(tmp_path, modem_config("m1")), clock, [FakeModem("m1", "SIM1", clock)])
    m1 = h.modems["m1"]

    async def opt_out_now() -> None:
        m1.before_send = None
        await h.gateway.add_optout(A)

    m1.before_send = opt_out_now
    try:
        res = await h.gateway.submit(SubmitRequest(to=A, text="too late"))
        await m1.wait_attempts(1)
        await h.idle()
        view = await h.gateway.get_message(res.id)
        assert view.status is MessageStatus.CANCELLED
        assert view.error_code == "opted_out"
        assert m1.sends == []
    finally:
        await h.close()


async def test_a_multipart_message_cut_by_a_crash_continues_on_its_sim(
    tmp_path: Path, clock: ManualClock
) -> None:
    cfg = config(tmp_path, modem_config("m1"), modem_config("m2"))
    store = SqliteStore(cfg.database)
    await store.open()
    gw = Gateway(cfg, store, clock=clock, modems=[])
    res = await gw.submit(SubmitRequest(to=A, text=LONG))
    await store.claim(res.id, "SIM1", clock.now())
    await store.part_sending(res.id, 1, "SIM1", "m1", clock.now())
    await store.part_sent(res.id, 1, 17, clock.now())
    await store.part_sending(res.id, 2, "SIM1", "m1", clock.now())
    await store.close()

    m1, m2 = FakeModem("m1", "SIM1", clock), FakeModem("m2", "SIM2", clock)
    h = await start(cfg, clock, [m2, m1])
    try:
        await m1.wait_sends(1)
        await h.idle()
        assert m2.sends == []
        assert [s.concat.seq for s in m1.sends] == [3]
        view = await h.gateway.get_message(res.id)
        assert [p.status for p in view.parts] == ["sent", "unconfirmed", "sent"]
        assert view.status is MessageStatus.UNCONFIRMED
        assert not view.stray_part_possible
        assert h.gateway.queue_depth() == 0
    finally:
        await h.close()


async def test_a_temporary_error_moves_a_sticky_recipient_to_another_sim(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await two(tmp_path, clock)
    m1, m2 = h.modems["m1"], h.modems["m2"]
    try:
        await h.gateway.submit(SubmitRequest(to=A, text="makes A sticky to SIM1", modem="m1"))
        await m1.wait_sends(1)
        await h.idle()
        m1.failures.append(cms(42))
        res = await h.gateway.submit(SubmitRequest(to=A, text="retry elsewhere"))
        await m1.wait_attempts(2)
        await h.idle()
        await h.advance(30)
        await m2.wait_sends(1)
        await h.idle()
        assert m2.sends[0].text == "retry elsewhere"
        assert (await h.gateway.get_message(res.id)).sim == "SIM2"
    finally:
        await h.close()


async def test_a_temporary_error_retries_on_the_same_sim_when_no_other_fits(
    tmp_path: Path, clock: ManualClock
) -> None:
    cfg = config(tmp_path, modem_config("m1", pool="a"), modem_config("m2", pool="b"))
    m1, m2 = FakeModem("m1", "SIM1", clock), FakeModem("m2", "SIM2", clock)
    m1.failures.append(cms(42))
    h = await start(cfg, clock, [m1, m2])
    try:
        res = await h.gateway.submit(SubmitRequest(to=A, text="pool a only", pool="a"))
        await m1.wait_attempts(1)
        await h.idle()
        await h.advance(30)
        await m1.wait_sends(1)
        assert m2.sends == []
        await h.idle()
        assert (await h.gateway.get_message(res.id)).status is MessageStatus.SENT
    finally:
        await h.close()
