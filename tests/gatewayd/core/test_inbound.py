"""Inbound SMS: stored before deletion, re-reads are no-ops, reassembly out of order and
incomplete; STOP/START/HELP keywords and the opt-out list."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from drivers.clock import ManualClock
from drivers.pdu import encode_deliver
from gatewayd.config.model import KeywordConfig, SendingConfig, WebhookConfig
from gatewayd.core import (
    Category,
    MessageStatus,
    OptedOut,
    OptOutScope,
    SubmitRequest,
)
from tests.gatewayd.core.fakes import FakeModem, Harness, config, modem_config, start

A = "+34600000001"
HOOK = "http://127.0.0.1:9/hook"


async def harness(tmp_path: Path, clock: ManualClock, *, paused: bool = True) -> Harness:
    cfg = config(
        tmp_path,
        modem_config("m1"),
        sending=SendingConfig(inbound_incomplete_after_seconds=3600),
        keywords=KeywordConfig(stop_reply="Unsubscribed.", help_reply="Help text."),
        webhooks=WebhookConfig(url=HOOK),
    )
    h = await start(cfg, clock, [FakeModem("m1", "SIM1", clock)])
    if paused:
        await h.gateway.pause("m1")
    return h


async def hook_events(h: Harness) -> list[tuple[str, dict[str, object]]]:
    return [(r.event, json.loads(r.payload_json)["data"]) for r in await h.store.pending_webhooks()]


async def test_an_inbound_sms_is_stored_once_with_a_webhook(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await harness(tmp_path, clock)
    try:
        [pdu] = encode_deliver(A, "Hola, ¿qué tal?", scts=clock.now())
        await h.modems["m1"].receive(pdu)
        await h.modems["m1"].receive(pdu)  # the sweep read it again before the delete
        page = await h.gateway.list_inbound()
        assert [(i.sender, i.text, i.incomplete) for i in page.items] == [
            (A, "Hola, ¿qué tal?", False)
        ]
        assert [e for e, _ in await hook_events(h)] == ["message.received"]
    finally:
        await h.close()


async def test_parts_out_of_order_and_days_apart_are_reassembled(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await harness(tmp_path, clock)
    text = "Parte " * 60
    p1, p2, p3 = encode_deliver(A, text, scts=clock.now(), concat_ref=77)
    try:
        await h.modems["m1"].receive(p3)
        await h.advance(1800)
        await h.modems["m1"].receive(p1)
        assert (await h.gateway.list_inbound()).items == ()
        await h.advance(2 * 86400)  # shown as incomplete after an hour
        [shown] = (await h.gateway.list_inbound()).items
        assert shown.incomplete
        assert (shown.parts_received, shown.parts_total) == (2, 3)
        await h.modems["m1"].receive(p2)
        [done] = (await h.gateway.list_inbound()).items
        assert done.text == text
        assert not done.incomplete
        events = await hook_events(h)
        assert [(e, d["incomplete"]) for e, d in events] == [
            ("message.received", True),
            ("message.received", False),
        ]
    finally:
        await h.close()


@pytest.mark.parametrize("word", ["Baja", "STOP!", "stop.", "  ArrÊt ", "stop please"])
async def test_stop_words_opt_out_cancel_queued_and_confirm_once(
    tmp_path: Path, clock: ManualClock, word: str
) -> None:
    h = await harness(tmp_path, clock)
    try:
        queued = await h.gateway.submit(
            SubmitRequest(to=A, text="offer", category=Category.MARKETING)
        )
        await h.modems["m1"].receive_text(A, word, clock.now())
        assert (await h.gateway.get_message(queued.id)).status is MessageStatus.CANCELLED
        with pytest.raises(OptedOut):
            await h.gateway.submit(SubmitRequest(to=A, text="order shipped"))
        [entry] = (await h.gateway.list_optouts()).items
        assert (entry.number, entry.scope) == (A, OptOutScope.ALL)
        await h.gateway.resume("m1")
        await h.modems["m1"].wait_sends(1)
        await h.idle()
        assert [s.text for s in h.modems["m1"].sends] == ["Unsubscribed."]
        assert "optout.created" in [e for e, _ in await hook_events(h)]
    finally:
        await h.close()


@pytest.mark.parametrize("text", ["cancelar mi pedido", "stopping by later", "Baja la música"])
async def test_ordinary_sentences_do_not_opt_out(
    tmp_path: Path, clock: ManualClock, text: str
) -> None:
    h = await harness(tmp_path, clock)
    try:
        await h.modems["m1"].receive_text(A, text, clock.now())
        assert (await h.gateway.list_optouts()).items == ()
        res = await h.gateway.submit(SubmitRequest(to=A, text="still reachable"))
        assert res.status is MessageStatus.QUEUED
    finally:
        await h.close()


async def test_start_removes_the_opt_out_and_help_replies_rate_limited(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = await harness(tmp_path, clock)
    try:
        await h.modems["m1"].receive_text(A, "STOP", clock.now())
        await h.advance(10)
        await h.modems["m1"].receive_text(A, "start", clock.now())
        assert (await h.gateway.list_optouts()).items == ()
        assert (await h.gateway.submit(SubmitRequest(to=A, text="welcome back"))).duplicate is False
        for n in range(3):
            await h.advance(10)
            await h.modems["m1"].receive_text(A, "Ayuda", clock.now() + timedelta(seconds=n))
        await h.gateway.resume("m1")
        await h.modems["m1"].wait_sends(4)
        await h.idle()
        replies = sorted(s.text for s in h.modems["m1"].sends)
        # STOP, START and one HELP reply: three auto replies per hour per number.
        assert replies == sorted(
            [
                "Unsubscribed.",
                "You are subscribed again. Reply STOP to unsubscribe.",
                "Help text.",
                "welcome back",
            ]
        )
        assert [e for e, _ in await hook_events(h) if e.startswith("optout")] == [
            "optout.created",
            "optout.removed",
        ]
    finally:
        await h.close()


async def test_marketing_scope_only_refuses_marketing(tmp_path: Path, clock: ManualClock) -> None:
    h = await harness(tmp_path, clock)
    try:
        promo = await h.gateway.submit(
            SubmitRequest(to=A, text="promo", category=Category.MARKETING)
        )
        receipt = await h.gateway.submit(SubmitRequest(to=A, text="receipt"))
        await h.gateway.add_optout(A, scope=OptOutScope.MARKETING, source="preferences")
        assert (await h.gateway.get_message(promo.id)).status is MessageStatus.CANCELLED
        assert (await h.gateway.get_message(receipt.id)).status is MessageStatus.QUEUED
        with pytest.raises(OptedOut):
            await h.gateway.submit(SubmitRequest(to=A, text="more", category=Category.MARKETING))
        assert (await h.gateway.submit(SubmitRequest(to=A, text="invoice"))).status == "queued"
        await h.gateway.remove_optout(A)
        assert (await h.gateway.list_optouts()).items == ()
    finally:
        await h.close()
