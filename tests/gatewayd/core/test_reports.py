"""Delivery reports: matching by (SIM, TP-MR, recipient), MR wrap, equal MRs, PENDING,
failures, unmatched reports and the report timeout."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from drivers.clock import ManualClock
from drivers.pdu import StatusReport, decode, encode_status_report
from gatewayd.config.model import SendingConfig, WebhookConfig
from gatewayd.core import MessageStatus, SubmitRequest
from tests.gatewayd.core.fakes import FakeModem, Harness, config, modem_config, start

A = "+34600000001"
B = "+34600000002"
LONG = "w" * 400  # three parts
HOOK = "http://127.0.0.1:9/hook"


def report(clock: ManualClock, mr: int, recipient: str, status: int = 0x00) -> StatusReport:
    rep = decode(
        encode_status_report(
            mr, recipient, scts=clock.now(), discharge_time=clock.now(), status=status
        )
    )
    assert isinstance(rep, StatusReport)
    return rep


async def harness(tmp_path: Path, clock: ManualClock, **sending: float) -> Harness:
    cfg = config(
        tmp_path,
        modem_config("m1"),
        sending=SendingConfig(**sending),  # type: ignore[arg-type]
        webhooks=WebhookConfig(url=HOOK),
    )
    return await start(cfg, clock, [FakeModem("m1", "SIM1", clock)])


async def send(h: Harness, to: str, text: str, parts: int) -> str:
    before = len(h.modems["m1"].sends)
    res = await h.gateway.submit(SubmitRequest(to=to, text=text))
    await h.modems["m1"].wait_sends(before + parts)
    await h.idle()
    return res.id


async def test_a_delivered_report_marks_the_message_delivered(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await harness(tmp_path, clock)
    try:
        mid = await send(h, A, "hi", 1)
        # Reports may name the recipient nationally: the digits still match.
        await h.modems["m1"].report(report(clock, h.modems["m1"].sends[0].mr, "600000001"))
        view = await h.gateway.get_message(mid)
        assert view.status is MessageStatus.DELIVERED
        assert view.parts[0].delivered_at == clock.now()
        hooks = [r.event for r in await h.store.pending_webhooks()]
        assert hooks == ["message.sent", "message.delivered"]
    finally:
        await h.close()


async def test_multipart_is_delivered_when_all_parts_are_with_equal_mrs(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await harness(tmp_path, clock)
    m1 = h.modems["m1"]
    m1.next_mrs(7, 7, 7)  # firmware that gives every part the same TP-MR
    try:
        mid = await send(h, A, LONG, 3)
        for n in range(3):
            assert (await h.gateway.get_message(mid)).status is MessageStatus.SENT
            await m1.report(report(clock, 7, A))
            view = await h.gateway.get_message(mid)
            assert [p.status for p in view.parts] == ["delivered"] * (n + 1) + ["sent"] * (2 - n)
        assert view.status is MessageStatus.DELIVERED
    finally:
        await h.close()


async def test_mr_wrap_matches_the_recent_part_not_the_old_one(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await harness(tmp_path, clock, report_match_window_seconds=3600)
    m1 = h.modems["m1"]
    try:
        m1.next_mrs(5)
        old = await send(h, A, "old", 1)
        await h.advance(7200)  # the MR space wrapped since; the old part is out of the window
        m1.next_mrs(255, 5)
        wrap = await send(h, A, "255", 1)
        new = await send(h, A, "new", 1)
        await m1.report(report(clock, 5, A))
        await m1.report(report(clock, 255, A))
        assert (await h.gateway.get_message(new)).status is MessageStatus.DELIVERED
        assert (await h.gateway.get_message(wrap)).status is MessageStatus.DELIVERED
        assert (await h.gateway.get_message(old)).status is MessageStatus.SENT
    finally:
        await h.close()


async def test_same_mr_to_different_numbers_matches_by_recipient(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await harness(tmp_path, clock)
    m1 = h.modems["m1"]
    m1.next_mrs(9, 9)
    try:
        to_a = await send(h, A, "a", 1)
        to_b = await send(h, B, "b", 1)
        await m1.report(report(clock, 9, B))
        assert (await h.gateway.get_message(to_b)).status is MessageStatus.DELIVERED
        assert (await h.gateway.get_message(to_a)).status is MessageStatus.SENT
    finally:
        await h.close()


async def test_pending_is_not_final_and_a_failure_report_fails(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await harness(tmp_path, clock)
    m1 = h.modems["m1"]
    try:
        mid = await send(h, A, "x", 1)
        mr = m1.sends[0].mr
        await m1.report(report(clock, mr, A, status=0x30))  # still trying
        view = await h.gateway.get_message(mid)
        assert view.status is MessageStatus.SENT
        assert "report_pending" in [e.status for e in view.history]
        await m1.report(report(clock, mr, A, status=0x41))  # incompatible destination
        view = await h.gateway.get_message(mid)
        assert view.status is MessageStatus.FAILED
        assert view.error_code == "tp_st_65"
        rows = await h.store.pending_webhooks()
        failed = [json.loads(r.payload_json) for r in rows if r.event == "message.failed"]
        assert failed[0]["data"]["id"] == mid
    finally:
        await h.close()


async def test_a_report_matching_nothing_is_kept(tmp_path: Path, clock: ManualClock) -> None:
    h = await harness(tmp_path, clock)
    try:
        await h.modems["m1"].report(report(clock, 42, A))
        assert await h.store.unmatched_reports() == 1
    finally:
        await h.close()


async def test_no_report_in_time_is_report_timeout_still_sent(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await harness(tmp_path, clock, report_timeout_seconds=600)
    try:
        mid = await send(h, A, "silent network", 1)
        await h.advance(599)
        assert [p.status for p in (await h.gateway.get_message(mid)).parts] == ["sent"]
        await h.advance(1)
        view = await h.gateway.get_message(mid)
        assert [p.status for p in view.parts] == ["report_timeout"]
        assert view.status is MessageStatus.SENT
        # A late report still lands.
        await h.modems["m1"].report(report(clock, h.modems["m1"].sends[0].mr, A))
        assert (await h.gateway.get_message(mid)).status is MessageStatus.DELIVERED
        assert clock.now() - view.parts[0].sent_at == timedelta(seconds=600)  # type: ignore[operator]
    finally:
        await h.close()


async def test_a_report_overtaking_the_sent_commit_still_matches(
    tmp_path: Path, clock: ManualClock
) -> None:
    # The modem's +CDS can be read right after +CMGS, while the part's `sent` is still being
    # committed: the report must wait for that commit, not land in unmatched_reports.
    h = await harness(tmp_path, clock)
    modem = h.modems["m1"]
    send_pdu = modem.send_pdu
    reports: list[asyncio.Task[None]] = []

    async def send_then_report_at_once(
        pdu_hex: str, length: int, *, before_submit: Callable[[], bool] | None = None
    ) -> int:
        mr = await send_pdu(pdu_hex, length, before_submit=before_submit)
        reports.append(asyncio.create_task(modem.report(report(clock, mr, A))))
        await asyncio.sleep(0)  # the report task starts before the worker records `sent`
        return mr

    modem.send_pdu = send_then_report_at_once  # type: ignore[method-assign]
    try:
        res = await h.gateway.submit(SubmitRequest(to=A, text="hi"))
        await modem.wait_sends(1)
        async with asyncio.timeout(5):
            await asyncio.gather(*reports)
        view = await h.gateway.get_message(res.id)
        assert view.status is MessageStatus.DELIVERED
        assert await h.store.unmatched_reports() == 0
    finally:
        await h.close()
