"""Whole journeys of the example flows (config/flows.toml) on the gateway with fake modems
and a manual clock: offsets, digital orders, quiet hours, caps, STOP mid-flow, restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from drivers.clock import ManualClock
from gatewayd.flows import FlowEngine, load_flows, parse_event
from gatewayd.store.flows_base import EnrolmentStatus
from tests.gatewayd.flows.harness import (
    BASE,
    CAPSULES,
    EBOOK,
    ES,
    EXAMPLE_FLOWS,
    FlowHarness,
    event,
    settings,
    start_flows,
)

HOUR = 3600.0
DAY = 86_400.0
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Madrid


async def enrolments(fh: FlowHarness, customer: str = "c-1") -> dict[str, EnrolmentStatus]:
    rows = await fh.rows("SELECT flow, status FROM flow_enrolments WHERE customer_id = ?", customer)
    return {r["flow"]: EnrolmentStatus(r["status"]) for r in rows}


async def test_first_physical_order_gets_each_message_in_order_at_its_offset(
    tmp_path: Path, clock: ManualClock
) -> None:
    fh = await start_flows(tmp_path, clock)
    try:
        out = await fh.emit("order.placed", tracking_url="https://track.example.com/ES1")
        assert set(out.enrolled) == {"order_confirmation", "reengagement"}
        await fh.modem.wait_sends(1)
        await fh.advance(2 * HOUR)
        await fh.emit("order.shipped", carrier="Correos", tracking_url="https://t.example/ES1")
        await fh.modem.wait_sends(2)
        await fh.advance(2 * DAY)
        delivered_at = clock.now()
        await fh.emit("order.delivered")
        await fh.modem.wait_sends(3)
        await fh.advance(8 * DAY)

        texts = fh.texts()
        times = [s.at for s in fh.sends]
        assert len(texts) == 5, texts
        # Brand first; Spanish folded to GSM 7-bit ("envío" -> "envio"); links shortened.
        assert texts[0].startswith("Tienda: Hola Ana, hemos recibido tu pedido O-1")
        assert "Cafetera Express" in texts[0]
        assert "89,90" in texts[0]
        assert "en camino con Correos" in texts[1]
        assert "Sigue el envio" in texts[1]
        assert "entregado" in texts[2]
        assert "Cafetera Express" in texts[3]
        assert "Guia rapida" in texts[3]
        assert "opinion" in texts[4]
        assert texts[4].endswith("Responde BAJA para darte de baja")
        assert all(f"{BASE}/s/" in t for t in texts)
        assert not any("track.example" in t or "shop.example" in t for t in texts)
        assert "BAJA" not in "".join(texts[:4])  # transactional: no opt-out clause
        assert times[0] == T0
        assert times[1] == T0 + timedelta(hours=2)
        assert times[2] == delivered_at
        assert times[3] == delivered_at + timedelta(days=1)  # set-up help next day
        assert times[4] == delivered_at + timedelta(days=7)  # review a week after delivery
        state = await enrolments(fh)
        assert state["after_delivery"] is EnrolmentStatus.DONE
        assert state["reengagement"] is EnrolmentStatus.ACTIVE  # 30 days are not over
    finally:
        await fh.close()


async def test_digital_order_skips_shipping_and_gets_access_then_review(
    tmp_path: Path, clock: ManualClock
) -> None:
    fh = await start_flows(tmp_path, clock)
    try:
        out = await fh.emit("order.placed", items=[EBOOK], locale="en_GB", total="9.90")
        assert set(out.enrolled) == {"order_confirmation", "digital_onboarding", "reengagement"}
        await fh.modem.wait_sends(2)
        shipped = await fh.emit("order.shipped", items=[EBOOK], locale="en_GB")
        assert shipped.enrolled == ()
        await fh.advance(4 * DAY)
        texts = fh.texts()
        assert len(texts) == 3, texts
        assert texts[0].startswith("Tienda: Hi Ana, we have your order O-1 (Guia del cafe)")
        assert "is ready" in texts[1]
        assert not any("on its way" in t for t in texts)
        assert texts[2].endswith("Reply STOP to opt out")
        assert fh.sends[2].at == T0 + timedelta(days=3)
    finally:
        await fh.close()


async def test_quiet_hours_defer_marketing_to_the_window_in_the_recipients_zone(
    tmp_path: Path, clock: ManualClock
) -> None:
    fh = await start_flows(tmp_path, clock)
    try:
        # New York: the review falls due at 09:00 UTC = 04:00 local; it waits until 09:00
        # local (14:00 UTC). The transactional access message goes at once at night.
        await fh.emit("order.placed", items=[EBOOK], locale="en_US", timezone="America/New_York")
        await fh.modem.wait_sends(2)
        assert [s.at for s in fh.sends] == [T0, T0]
        await fh.advance(3 * DAY + 4 * HOUR)
        assert len(fh.sends) == 2  # due at 09:00 UTC, still night in New York
        await fh.advance(2 * HOUR)
        assert len(fh.sends) == 3
        assert fh.sends[2].at == T0 + timedelta(days=3, hours=5)
    finally:
        await fh.close()


async def test_quiet_hours_take_the_intersection_of_a_countrys_zones(
    tmp_path: Path,
) -> None:
    # +34: Madrid (UTC+1) and the Canaries (UTC+0). At 08:30 UTC Madrid is awake (09:30)
    # but the Canaries are not (08:30): marketing waits for 09:00 UTC.
    clock = ManualClock(datetime(2026, 1, 5, 8, 30, tzinfo=UTC))
    fh = await start_flows(tmp_path, clock)
    try:
        await fh.emit("order.placed", items=[EBOOK])
        await fh.modem.wait_sends(2)
        await fh.advance(3 * DAY + 20 * 60)
        assert len(fh.sends) == 2
        await fh.advance(20 * 60)
        assert len(fh.sends) == 3
        assert fh.sends[2].at == datetime(2026, 1, 8, 9, 0, tzinfo=UTC)
    finally:
        await fh.close()


CAP_FLOWS = """
[templates.a]
es = "Oferta A {{ order.id }}"
[templates.b]
es = "Oferta B {{ order.id }}"
[templates.c]
es = "Aviso C {{ order.id }}"
[templates.d]
es = "Aviso D {{ order.id }}"
[[flows]]
name = "promo_a"
trigger = "order.delivered"
category = "marketing"
steps = [{ send = "a" }]
[[flows]]
name = "promo_b"
trigger = "order.delivered"
category = "marketing"
steps = [{ send = "b" }]
[[flows]]
name = "notice_c"
trigger = "order.shipped"
steps = [{ send = "c" }]
[[flows]]
name = "notice_d"
trigger = "order.shipped"
steps = [{ send = "d" }]
"""


async def test_a_frequency_cap_and_the_minimum_gap_hold(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "flows.toml"
    path.write_text(CAP_FLOWS)
    fh = await start_flows(
        tmp_path, clock, load_flows(path), settings(marketing_per_day=1, min_gap_seconds=600)
    )
    try:
        await fh.emit("order.shipped")
        await fh.advance(HOUR)
        # Two transactional notices at once: the second keeps the 10-minute gap.
        assert [s.at for s in fh.sends] == [T0, T0 + timedelta(minutes=10)]
        await fh.emit("order.delivered")
        await fh.advance(12 * HOUR)
        assert len(fh.sends) == 3  # one marketing message per day
        await fh.advance(13 * HOUR)
        assert len(fh.sends) == 4
        marketing = fh.sends[2:]
        assert marketing[1].at - marketing[0].at == timedelta(days=1)
        assert {t.split(" ")[2] for t in fh.texts()[2:]} == {"A", "B"}
    finally:
        await fh.close()


async def test_stop_mid_flow_ends_every_marketing_step(tmp_path: Path, clock: ManualClock) -> None:
    fh = await start_flows(tmp_path, clock)
    try:
        await fh.emit("order.placed", items=[EBOOK, CAPSULES])
        await fh.modem.wait_sends(2)  # confirmation and digital access
        await fh.advance(HOUR)
        await fh.modem.receive_text(ES, "Baja", clock.now())
        await fh.modem.wait_sends(3)  # the core's confirmation of the opt-out
        assert fh.texts()[2] == "Baja confirmada."
        await fh.advance(120 * DAY)
        assert len(fh.sends) == 3  # no review, no replenishment, no re-engagement
        rows = await fh.rows("SELECT flow, status, exit_reason FROM flow_enrolments ORDER BY flow")
        ended = {r["flow"]: (r["status"], r["exit_reason"]) for r in rows}
        for flow in ("digital_onboarding", "replenishment", "reengagement"):
            assert ended[flow] == ("exited", "opted_out"), flow
        # The STOP (scope all) is never narrowed to a marketing opt-out by the flow's end.
        assert await fh.store.optout_scope(ES) == "all"
    finally:
        await fh.close()


async def test_marketing_without_consent_is_skipped_and_transactional_still_goes(
    tmp_path: Path, clock: ManualClock
) -> None:
    fh = await start_flows(tmp_path, clock)
    try:
        await fh.emit("order.placed", items=[EBOOK], marketing=False)
        await fh.advance(4 * DAY)
        assert len(fh.sends) == 2  # confirmation and access; the review is marketing
        sent = await fh.rows("SELECT step, outcome FROM flow_sends ORDER BY seq")
        assert ("feedback", "no_consent") in [(r["step"], r["outcome"]) for r in sent]
    finally:
        await fh.close()


async def test_replenishment_is_timed_from_usage_days(tmp_path: Path, clock: ManualClock) -> None:
    fh = await start_flows(tmp_path, clock)
    try:
        await fh.emit("order.placed", items=[CAPSULES], total="9.95")
        await fh.advance(26 * DAY)
        reminders = [s for s in fh.sends if "se acabaran pronto" in s.text]
        assert [s.at for s in reminders] == [T0 + timedelta(days=25)]  # 30 days less 5
    finally:
        await fh.close()


async def test_a_cancelled_order_exits_its_shipping_flows(
    tmp_path: Path, clock: ManualClock
) -> None:
    fh = await start_flows(tmp_path, clock)
    try:
        await fh.emit("order.placed")
        await fh.emit("order.shipped")
        out = await fh.emit("order.cancelled")
        assert out.exited == 1
        await fh.emit("order.delivered")
        await fh.advance(8 * DAY)
        assert not any("entregado" in t for t in fh.texts())
        assert (await enrolments(fh))["after_delivery"] is EnrolmentStatus.EXITED
    finally:
        await fh.close()


async def test_an_event_id_is_idempotent_and_unknown_types_are_kept(
    tmp_path: Path, clock: ManualClock
) -> None:
    fh = await start_flows(tmp_path, clock)
    try:
        body = event("order.placed", at=clock.now())
        first = await fh.post(body)
        again = await fh.post(body)
        assert not first.duplicate
        assert again.duplicate
        assert again.enrolled == ()
        other = await fh.post(event("cart.abandoned", at=clock.now(), with_order=False))
        assert other.enrolled == ()
        assert not other.duplicate
        await fh.advance(HOUR)
        assert len(fh.sends) == 1
        rows = await fh.rows("SELECT type FROM flow_events ORDER BY seq")
        assert [r["type"] for r in rows] == ["order.placed", "cart.abandoned"]
    finally:
        await fh.close()


async def test_a_restart_resumes_every_enrolment_where_it_was(
    tmp_path: Path, clock: ManualClock
) -> None:
    fh = await start_flows(tmp_path, clock)
    try:
        await fh.emit("order.placed", items=[EBOOK])
        await fh.modem.wait_sends(2)
        await fh.advance(DAY)
        # The engine goes away (a restart): a new one on the same file carries on.
        await fh.engine.stop()
        store = await fh.reopen_store()
        fh.engine = FlowEngine(
            fh.h.gateway, store, load_flows(EXAMPLE_FLOWS), settings(), clock=clock
        )
        fh.engine.start()
        await fh.h.advance(2 * DAY)
        await fh.modem.wait_sends(3)
        assert fh.sends[2].at == T0 + timedelta(days=3)
        assert "opinion" in fh.sends[2].text
    finally:
        await fh.close()


REPLY_FLOWS = """
[templates.ask]
es = "¿Todo bien con tu pedido {{ order.id }}? Responde SI o NO"
fold_accents = true
[templates.thanks]
es = "Gracias por responder"
[templates.nudge]
es = "Seguimos aqui si nos necesitas"
[[flows]]
name = "check_in"
trigger = "order.delivered"
steps = [
    { send = "ask" },
    { wait = "1d" },
    { if = { replied = "ask" }, then = "thank", else = "remind" },
    { name = "thank", send = "thanks" },
    { exit = "replied" },
    { name = "remind", send = "nudge" },
]
"""


async def test_a_branch_on_whether_the_customer_replied(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "flows.toml"
    path.write_text(REPLY_FLOWS)
    fh = await start_flows(tmp_path, clock, load_flows(path))
    other = "+34600000002"
    try:
        await fh.emit("order.delivered")
        await fh.emit("order.delivered", customer="c-2", phone=other, order="O-2")
        await fh.modem.wait_sends(2)
        await fh.advance(3600)
        await fh.modem.receive_text(ES, "SI", clock.now())
        await fh.advance(DAY)
        assert fh.texts(ES)[1] == "Tienda: Gracias por responder"
        assert fh.texts(other)[1] == "Tienda: Seguimos aqui si nos necesitas"
        metrics = (await fh.engine.metrics(T0)).to_json()
        [flow] = metrics["flows"]
        steps = {s["step"]: s for s in flow["steps"]}
        assert steps["ask"]["sent"] == 2
        assert steps["ask"]["replied"] == 1
        assert steps["ask"]["rates"]["replied"] == 0.5
    finally:
        await fh.close()


async def test_withdrawn_marketing_consent_becomes_a_marketing_opt_out(
    tmp_path: Path, clock: ManualClock
) -> None:
    fh = await start_flows(tmp_path, clock)
    try:
        await fh.emit("order.placed", items=[EBOOK])
        await fh.emit("customer.updated", marketing=False, with_order=False)
        assert await fh.store.optout_scope(ES) == "marketing"
        [view] = (await fh.h.gateway.list_optouts()).items
        assert view.source == "consent"
        await fh.advance(4 * DAY)
        assert len(fh.sends) == 2  # the review (marketing) never goes
    finally:
        await fh.close()


async def test_an_order_soon_after_a_message_converts(tmp_path: Path, clock: ManualClock) -> None:
    fh = await start_flows(tmp_path, clock)
    try:
        await fh.emit("order.placed", items=[EBOOK])
        await fh.advance(3 * DAY)  # the review request goes
        await fh.advance(2 * DAY)
        await fh.emit("order.placed", order="O-2")
        await fh.advance(DAY)
        metrics = (await fh.engine.metrics(T0)).to_json()
        flows = {f["flow"]: f for f in metrics["flows"]}
        steps = {s["step"]: s for s in flows["digital_onboarding"]["steps"]}
        assert steps["feedback"]["converted"] == 1
        assert steps["digital_access"]["converted"] == 1
        # The order that started a flow never counts as its own conversion.
        [confirm] = flows["order_confirmation"]["steps"]
        assert confirm["sent"] == 2
        assert confirm["converted"] == 1  # O-2 after O-1's confirmation (within 7 days)
        assert flows["order_confirmation"]["enrolled"] == 2
    finally:
        await fh.close()


async def test_templates_see_the_event_data_and_money_in_the_customers_locale(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "flows.toml"
    path.write_text(
        "[templates.t]\n"
        'es = "Cupon {{ event.data.coupon }} para {{ money(order.total) }},'
        " pedido del {{ date(order.placed_at, 'long') }}\"\n"
        'en = "Coupon {{ event.data.coupon }} for {{ money(order.total) }},'
        " order of {{ date(order.placed_at, 'long') }}\"\n"
        '[[flows]]\nname = "f"\ntrigger = "order.placed"\nsteps = [{ send = "t" }]\n'
    )
    fh = await start_flows(tmp_path, clock, load_flows(path))
    try:
        for customer, phone, locale in (("c-1", ES, "es_ES"), ("c-2", "+34600000002", "en_US")):
            body = event("order.placed", at=clock.now(), customer=customer, phone=phone)
            body["customer"]["locale"] = locale
            body["data"] = {"coupon": "HOLA10"}
            await fh.post(body)
        await fh.modem.wait_sends(2)
        assert fh.texts() == [
            "Tienda: Cupon HOLA10 para 89,90 €, pedido del 5 de enero de 2026",
            "Tienda: Coupon HOLA10 for €89.90, order of January 5, 2026",
        ]
    finally:
        await fh.close()


async def test_a_delivery_posted_before_the_shipment_does_not_hang_the_flow(
    tmp_path: Path, clock: ManualClock
) -> None:
    fh = await start_flows(tmp_path, clock)
    try:
        await fh.emit("order.placed")
        await fh.emit("order.delivered")
        await fh.emit("order.shipped")
        await fh.advance(3600)
        texts = fh.texts()
        assert any("entregado" in t for t in texts)
        assert fh.sends[-1].at == T0
        assert (await enrolments(fh))["after_delivery"] is EnrolmentStatus.ACTIVE
    finally:
        await fh.close()


async def test_an_event_stored_before_a_crash_is_processed_after_it(
    tmp_path: Path, clock: ManualClock
) -> None:
    fh = await start_flows(tmp_path, clock)
    try:
        # A crash right after the event's commit: stored, nothing started yet.
        first = parse_event(event("order.placed", at=clock.now()), region="ES", now=clock.now())
        assert await fh.store.ingest(first.stored, first.customer, first.order)
        assert await fh.engine.recover() == 1
        await fh.settle()
        await fh.modem.wait_sends(1)
        assert await fh.engine.recover() == 0
        # The shop retries another event whose processing was cut short: it is done now.
        body = event("order.placed", at=clock.now(), order="O-2")
        second = parse_event(body, region="ES", now=clock.now())
        await fh.store.ingest(second.stored, second.customer, second.order)
        retried = await fh.post(body)
        assert not retried.duplicate
        assert "order_confirmation" in retried.enrolled
        assert (await fh.post(body)).duplicate
        await fh.modem.wait_sends(2)
        assert "O-2" in fh.texts()[1]
    finally:
        await fh.close()
