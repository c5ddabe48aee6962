"""An otp posted at 03:00 in the customer's night goes at once, while a marketing flow
step due at the same time waits for the morning (quiet hours)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from drivers.clock import ManualClock
from gatewayd.core import Category, MessageStatus, SubmitRequest
from gatewayd.flows import parse_flows
from tests.gatewayd.flows.harness import ES, settings, start_flows

NIGHT = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # 03:00 in Madrid


async def test_an_otp_at_three_in_the_morning_goes_at_once_while_marketing_waits(
    tmp_path: Path,
) -> None:
    clock = ManualClock(NIGHT - timedelta(days=30))
    fh = await start_flows(tmp_path, clock)
    try:
        await fh.emit("order.placed", timezone="Europe/Madrid")
        await fh.modem.wait_sends(1)
        await fh.advance((NIGHT - clock.now()).total_seconds())  # reengage_30 falls due now
        assert len(fh.sends) == 1  # the marketing step waits for 09:00
        (queued,) = (await fh.h.gateway.list_messages(status=MessageStatus.QUEUED)).items
        assert queued.send_at == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
        otp = await fh.h.gateway.submit(
            SubmitRequest(to=ES, text="Tu código: 482913", category=Category.OTP)
        )
        await fh.modem.wait_sends(2)
        await fh.settle()
        assert fh.sends[1].text == "Tu código: 482913"
        assert fh.sends[1].at == NIGHT
        view = await fh.h.gateway.get_message(otp.id)
        assert view.status is MessageStatus.SENT
        assert view.text_redacted
        await fh.advance(7 * 3600.0)
        assert fh.sends[2].at == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
        assert "hace un mes" in fh.sends[2].text
    finally:
        await fh.close()


async def test_an_alert_step_of_a_flow_is_never_held_by_quiet_hours(tmp_path: Path) -> None:
    flows = parse_flows(
        {
            "templates": {"fraud": {"es": "Alerta: pedido {{ order.id }} bloqueado", "en": "x"}},
            "flows": [
                {
                    "name": "fraud_alert",
                    "trigger": "order.placed",
                    "category": "alert",
                    "steps": [{"send": "fraud"}],
                }
            ],
        }
    )
    clock = ManualClock(NIGHT)
    fh = await start_flows(tmp_path, clock, flows, settings(quiet_transactional=True))
    try:
        await fh.emit("order.placed", timezone="Europe/Madrid")
        await fh.modem.wait_sends(1)
        assert fh.sends[0].at == NIGHT
        assert fh.sends[0].text == "Tienda: Alerta: pedido O-1 bloqueado"
    finally:
        await fh.close()
