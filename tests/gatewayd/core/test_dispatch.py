"""Dispatch: ordering, send_at, expiry, routing, stickiness, pools, multipart on one SIM."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from drivers.clock import ManualClock
from gatewayd.config.model import RoutingRule
from gatewayd.core import Category, MessageStatus, Priority, SubmitRequest
from tests.gatewayd.core.fakes import FakeModem, config, modem_config, start

A = "+34600000001"
B = "+34600000002"


async def test_a_submitted_message_is_sent_and_marked_sent(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await start(config(tmp_path, modem_config("m1")), clock, [FakeModem("m1", "8934001", clock)])
    try:
        res = await h.gateway.submit(SubmitRequest(to=A, text="hello"))
        assert res.status is MessageStatus.QUEUED
        assert h.gateway.queue_depth() == 1
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
    finally:
        await h.close()
