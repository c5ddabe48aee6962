"""Superseded updates, events in occurred_at order, reminders relative to an event's time,
and surveys whose reply is recorded against the step and may branch the flow."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from drivers.clock import ManualClock
from gatewayd.core import MessageStatus
from gatewayd.flows import parse_flows
from tests.gatewayd.flows.harness import ES, event, start_flows

HOUR = 3600.0


async def test_out_for_delivery_supersedes_a_queued_shipped_message(
    tmp_path: Path, clock: ManualClock
) -> None:
    fh = await start_flows(tmp_path, clock)
    try:
        await fh.h.gateway.pause("m1")
        await fh.emit("order.shipped", carrier="Correos")
        (shipped,) = await fh.store.queued_sends(["shipping"], "O-1")
        assert shipped.message_id is not None
        await fh.emit("order.out_for_delivery")
        view = await fh.h.gateway.get_message(shipped.message_id)
        assert view.status is MessageStatus.CANCELLED
        assert view.error_code == "superseded"
        await fh.h.gateway.resume("m1")
        await fh.modem.wait_sends(1)
        await fh.settle()
        texts = fh.texts()
        assert len(texts) == 1
        assert "llega hoy" in texts[0]
        entries = await fh.engine.timeline("c-1")
        assert [(e.what, e.reason, e.flow) for e in entries if e.what == "cancelled"] == [
            ("cancelled", "superseded", "shipping")
        ]
    finally:
        await fh.close()


async def test_a_late_older_shipped_event_never_sends_a_stale_update(
    tmp_path: Path, clock: ManualClock
) -> None:
    fh = await start_flows(tmp_path, clock)
    try:
        earlier = clock.now() - timedelta(hours=5)
        await fh.emit("order.out_for_delivery")
        await fh.modem.wait_sends(1)
        out = await fh.post(event("order.shipped", at=earlier, carrier="Correos"))
        assert "shipping" not in out.enrolled
        await fh.advance(HOUR)
        assert len(fh.texts()) == 1
        assert "llega hoy" in fh.texts()[0]
        entries = await fh.engine.timeline("c-1")
        assert ("skipped", "superseded", "shipping") in [
            (e.what, e.reason, e.flow) for e in entries
        ]
    finally:
        await fh.close()


FLOWS = parse_flows(
    {
        "templates": {
            "reminder": {
                "es": "Recuerda tu cita de mañana ({{ date(event.data.appointment_at) }})",
                "en": "Reminder: your appointment tomorrow ({{ date(event.data.appointment_at) }})",
            },
            "rate": {
                "es": "¿Qué nota le das a tu pedido {{ order.id }}? Responde de 1 a 5",
                "en": "How do you rate order {{ order.id }}? Reply 1 to 5",
            },
            "thanks_review": {
                "es": "¡Gracias! Cuéntalo aquí: https://shop.example.com/r",
                "en": "Thanks! Tell others: https://shop.example.com/r",
            },
            "sorry": {
                "es": "Sentimos que no haya ido bien. Te llamamos.",
                "en": "Sorry it went wrong. We will call you.",
            },
        },
        "flows": [
            {
                "name": "appointment_reminder",
                "trigger": "appointment.booked",
                "scope": "customer",
                "steps": [{"until": "data.appointment_at - 24h"}, {"send": "reminder"}],
            },
            {
                "name": "rating",
                "trigger": "order.delivered",
                "steps": [
                    {"send": "rate", "ask": {"pattern": "[1-5]", "window": "3d"}},
                    {"wait_for": "survey.answered", "timeout": "3d", "on_timeout": "exit"},
                    {"if": {"answered": "rate", "answer": ["4", "5"]}, "else": "sorry"},
                    {"send": "thanks_review"},
                    {"exit": "done"},
                    {"name": "sorry", "send": "sorry"},
                ],
            },
        ],
    }
)


async def test_a_reminder_goes_24_hours_before_the_appointment_in_the_event(
    tmp_path: Path, clock: ManualClock
) -> None:
    fh = await start_flows(tmp_path, clock, FLOWS)
    try:
        appointment = clock.now() + timedelta(days=3, hours=2)
        body: dict[str, Any] = event("appointment.booked", at=clock.now(), with_order=False)
        body["data"] = {"appointment_at": appointment.isoformat()}
        await fh.post(body)
        await fh.advance(3 * 86_400.0)
        (sent,) = fh.sends
        assert sent.at == appointment - timedelta(hours=24)
        assert sent.text.startswith("Tienda: Recuerda tu cita de mañana (")
    finally:
        await fh.close()


async def test_a_survey_reply_4_is_recorded_against_its_step_and_branches(
    tmp_path: Path, clock: ManualClock
) -> None:
    fh = await start_flows(tmp_path, clock, FLOWS)
    try:
        since = clock.now()
        await fh.emit("order.delivered")
        await fh.modem.wait_sends(1)
        assert "Responde de 1 a 5" in fh.texts()[0]
        await fh.advance(HOUR)
        await fh.modem.receive_text(ES, " 4 ", clock.now())
        await fh.settle()
        await fh.modem.wait_sends(2)
        assert fh.texts()[1] == "Tienda: ¡Gracias! Cuéntalo aquí: " + fh.texts()[1].split(": ")[-1]
        rows = await fh.rows("SELECT step, answer FROM survey_answers")
        assert [(r["step"], r["answer"]) for r in rows] == [("rate", "4")]
        await fh.modem.receive_text(ES, "1", clock.now())  # a second reply changes nothing
        await fh.advance(HOUR)
        assert len(fh.sends) == 2
        metrics = (await fh.engine.metrics(since)).to_json()
        (rating,) = [f for f in metrics["flows"] if f["flow"] == "rating"]
        rate = next(s for s in rating["steps"] if s["step"] == "rate")
        assert rate["answered"] == 1
        assert rate["replied"] == 1
    finally:
        await fh.close()
