"""Urgent messages (otp, alert): priority, reserved share, validity, expiry at the prompt,
redaction once final."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drivers.clock import ManualClock
from gatewayd.config.model import Limits, SendingConfig
from gatewayd.core import Category, MessageStatus, Priority, SubmitRequest
from gatewayd.core.limiter import Limiter
from tests.gatewayd.core.fakes import FakeModem, config, modem_config, start

A = "+34600000001"
B = "+34600000002"


async def test_an_otp_goes_before_everything_queued_with_a_five_minute_validity(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await start(config(tmp_path, modem_config("m1")), clock, [FakeModem("m1", "8934", clock)])
    try:
        await h.gateway.pause("m1")
        await h.gateway.submit(SubmitRequest(to=A, text="offer", category=Category.MARKETING))
        await h.gateway.submit(SubmitRequest(to=A, text="order", priority=Priority.HIGH))
        otp = await h.gateway.submit(SubmitRequest(to=B, text="Code 123456", category=Category.OTP))
        view = await h.gateway.get_message(otp.id)
        assert view.priority is Priority.URGENT
        assert view.expires_at == clock.now() + timedelta(minutes=5)
        await h.gateway.resume("m1")
        await h.modems["m1"].wait_sends(3)
        sends = h.modems["m1"].sends
        assert [s.text for s in sends] == ["Code 123456", "order", "offer"]
        assert sends[0].submit.vp_minutes == 5  # the network drops it after five minutes too
        assert sends[1].submit.vp_minutes == 1440
    finally:
        await h.close()


def test_the_limiter_keeps_the_reserved_share_from_a_reserving_message() -> None:
    now = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
    lim = Limiter(Limits(max_per_minute=5, max_per_hour=None, max_per_day=None))
    for i in range(4):
        lim.record(now + timedelta(seconds=i))
    at = now + timedelta(seconds=5)
    assert lim.earliest(1, at, reserve=0.2) == now + timedelta(seconds=60)  # 4 of 5 used
    assert lim.earliest(1, at) == at  # the reserved fifth is free for an otp
    # A message bigger than the unreserved share waits for an empty window, never forever.
    assert lim.earliest(5, at, reserve=0.2) == now + timedelta(seconds=63)


async def test_marketing_filling_the_queue_leaves_room_for_an_otp(
    tmp_path: Path, clock: ManualClock
) -> None:
    limits = Limits(max_per_minute=5, max_per_hour=None, max_per_day=None)
    cfg = config(
        tmp_path,
        modem_config("m1", limits=limits),
        sending=SendingConfig(urgent_reserved_share=0.2),
    )
    h = await start(cfg, clock, [FakeModem("m1", "8934", clock)])
    try:
        for i in range(10):
            await h.gateway.submit(
                SubmitRequest(to=A, text=f"offer {i}", category=Category.MARKETING)
            )
        await h.modems["m1"].wait_sends(4)
        await h.idle()
        assert len(h.modems["m1"].sends) == 4  # the fifth slot of the minute is reserved
        await h.gateway.submit(
            SubmitRequest(to=B, text="Alert: new login", category=Category.ALERT)
        )
        await h.modems["m1"].wait_sends(5)
        await h.idle()
        assert h.modems["m1"].sends[4].text == "Alert: new login"
        assert h.modems["m1"].sends[4].at == h.modems["m1"].sends[3].at  # at once
        await h.advance(60)
        assert len(h.modems["m1"].sends) == 9  # four more marketing in the next minute
    finally:
        await h.close()


async def test_an_otp_past_expires_at_at_the_prompt_is_expired_never_sent(
    tmp_path: Path, clock: ManualClock
) -> None:
    modem = FakeModem("m1", "8934", clock)
    h = await start(config(tmp_path, modem_config("m1")), clock, [modem])
    try:

        async def late() -> None:
            # The modem was slow to give the prompt: the code's five minutes ran out.
            await clock.advance(360)

        modem.before_send = late
        otp = await h.gateway.submit(SubmitRequest(to=A, text="Code 999111", category=Category.OTP))
        await modem.wait_attempts(1)
        await h.idle()
        view = await h.gateway.get_message(otp.id)
        assert view.status is MessageStatus.EXPIRED
        assert modem.sends == []
        assert view.text == ""
        assert view.text_redacted
    finally:
        await h.close()


async def test_an_otp_text_is_redacted_in_the_store_and_api_once_final(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await start(config(tmp_path, modem_config("m1")), clock, [FakeModem("m1", "8934", clock)])
    try:
        await h.gateway.pause("m1")
        otp = await h.gateway.submit(SubmitRequest(to=A, text="Code 424242", category=Category.OTP))
        queued = await h.gateway.get_message(otp.id)
        assert queued.text == "Code 424242"
        assert not queued.text_redacted
        await h.gateway.resume("m1")
        await h.modems["m1"].wait_sends(1)
        await h.idle()
        view = await h.gateway.get_message(otp.id)
        assert view.status is MessageStatus.SENT
        assert view.to_json()["text"] == ""
        assert view.to_json()["text_redacted"] is True
    finally:
        await h.close()
    db = sqlite3.connect(tmp_path / "gw.db")
    try:
        row = db.execute("SELECT text FROM messages WHERE id = ?", (otp.id,)).fetchone()
        pdus = db.execute("SELECT pdu FROM parts WHERE message_id = ?", (otp.id,)).fetchall()
    finally:
        db.close()
    assert row == ("",)
    assert pdus == [("",)]
