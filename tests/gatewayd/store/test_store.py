"""The store's behaviour, the same on SQLite and PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from gatewayd.store import (
    Category,
    IdempotencyKeyReused,
    InboundStatus,
    Inserted,
    MessageStatus,
    NewInboundPart,
    NewMessage,
    NewPart,
    OptOutScope,
    PartStatus,
    Priority,
    RecipientOptedOut,
    ReportIn,
    RouteQuery,
    Store,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
A, B = "+34600000001", "+34600000002"


def message(
    mid: str,
    to: str = A,
    *,
    parts: int = 1,
    category: Category = Category.TRANSACTIONAL,
    priority: Priority = Priority.NORMAL,
    send_at: datetime = T0,
    expires_at: datetime | None = None,
    key: str | None = None,
    body: str = "b",
) -> NewMessage:
    return NewMessage(
        id=mid,
        recipient=to,
        text=f"text of {mid}",
        category=category,
        priority=priority,
        encoding="gsm7",
        parts=tuple(NewPart(n, f"{n:02d}", 10) for n in range(1, parts + 1)),
        replaced_chars=(),
        send_at=send_at,
        expires_at=expires_at,
        modem=None,
        pool=None,
        metadata={"n": mid},
        callback_url=None,
        force_ucs2=False,
        smart=False,
        created_at=T0,
        idempotency_key=key,
        request_hash=body if key else None,
    )


def route(sim: str, *others: str) -> RouteQuery:
    return RouteQuery(
        identity=sim, modem=f"modem-{sim}", pool="default", others_ready=frozenset(others)
    )


async def send_all(store: Store, mid: str, sim: str, at: datetime, first_mr: int = 0) -> None:
    msg = await store.claim(mid, sim, at)
    assert msg is not None
    for part in msg.parts:
        await store.part_sending(mid, part.seq, sim, f"modem-{sim}", at)
        await store.part_sent(mid, part.seq, first_mr + part.seq, at)


async def test_dispatch_order_claim_send_and_history(store: Store) -> None:
    await store.insert_messages(
        [
            message("low", priority=Priority.LOW),
            message("later", B, send_at=T0 + timedelta(minutes=5)),
            message("high", priority=Priority.HIGH, parts=2),
        ]
    )
    assert store.queue_depth() == 3
    work = await store.next_work(route("S1"), T0, sticky=True)
    assert work.message is not None
    assert work.message.id == "high"
    assert await store.claim("high", "S1", T0) is not None
    assert await store.claim("high", "S1", T0) is None  # taken: no second claim
    await store.part_sending("high", 1, "S1", "modem-S1", T0)
    assert await store.part_sent("high", 1, 5, T0) is MessageStatus.SENDING
    await store.part_sending("high", 2, "S1", "modem-S1", T0)
    assert await store.part_sent("high", 2, 6, T0) is MessageStatus.SENT
    msg = await store.get_message("high")
    assert msg is not None
    assert [(p.status, p.mr, p.identity) for p in msg.parts] == [
        (PartStatus.SENT, 5, "S1"),
        (PartStatus.SENT, 6, "S1"),
    ]
    assert [h.status for h in msg.history] == [
        "queued",
        "sending",
        "sending",
        "sent",
        "sending",
        "sent",
        "sent",
    ]
    assert store.queue_depth() == 2
    assert [m.id for m in await store.list_messages(status=MessageStatus.QUEUED)] == [
        "later",
        "low",
    ]
    page = await store.list_messages(limit=2)
    assert [m.id for m in await store.list_messages(before_seq=page[-1].seq)] == ["low"]
    assert (await store.send_log(T0))["S1"] == [T0, T0]


async def test_the_send_log_of_one_sim(store: Store) -> None:
    await store.insert_messages([message("m1"), message("m2")])
    for mid, sim in (("m1", "S1"), ("m2", "S2")):
        assert await store.claim(mid, sim, T0) is not None
        await store.part_sending(mid, 1, sim, f"modem-{sim}", T0)
    assert set(await store.send_log(T0)) == {"S1", "S2"}
    assert await store.send_log(T0, "S2") == {"S2": [T0]}
    assert await store.send_log(T0, "S3") == {}


async def test_a_temporary_failure_mid_message_binds_it_to_its_sim(store: Store) -> None:
    await store.insert_messages([message("m1", parts=2)])
    assert await store.claim("m1", "S1", T0) is not None
    await store.part_sending("m1", 1, "S1", "modem-S1", T0)
    await store.part_sent("m1", 1, 1, T0)
    await store.part_sending("m1", 2, "S1", "modem-S1", T0)
    await store.requeue(
        "m1",
        T0,
        next_attempt_at=T0 + timedelta(seconds=30),
        count_attempt=True,
        avoid_identity="S1",
        bound_until=T0 + timedelta(minutes=5),
        error_code="cms_42",
        error_text="Congestion",
    )
    later = T0 + timedelta(minutes=1)
    # S2 is not given it while S1 is ready and the binding holds; S1 gets it back.
    assert (await store.next_work(route("S2", "S1"), later, sticky=False)).message is None
    back = await store.next_work(route("S1", "S2"), later, sticky=False)
    assert back.message is not None
    assert (back.message.attempts, back.message.error_code) == (1, "cms_42")


async def test_recover_applies_the_unknown_outcome_rule(store: Store) -> None:
    await store.insert_messages([message("tx"), message("mk", B, category=Category.MARKETING)])
    for mid in ("tx", "mk"):
        assert await store.claim(mid, "S1", T0) is not None
        await store.part_sending(mid, 1, "S1", "modem-S1", T0)
    unconfirmed, requeued = await store.recover(
        T0 + timedelta(seconds=1),
        resend_categories=frozenset({Category.MARKETING}),
        bound_until=T0 + timedelta(minutes=1),
    )
    assert (unconfirmed, requeued) == (1, 1)
    tx, mk = await store.get_message("tx"), await store.get_message("mk")
    assert tx is not None
    assert mk is not None
    assert (tx.status, tx.parts[0].status) == (MessageStatus.UNCONFIRMED, PartStatus.UNCONFIRMED)
    assert (mk.status, mk.parts[0].status) == (MessageStatus.QUEUED, PartStatus.QUEUED)
    assert store.queue_depth() == 1


async def test_reports_match_the_oldest_part_with_that_mr(store: Store) -> None:
    await store.insert_messages([message("m1"), message("m2")])
    await send_all(store, "m1", "S1", T0, first_mr=6)
    await send_all(store, "m2", "S1", T0 + timedelta(seconds=1), first_mr=6)  # MR 7 again
    report = ReportIn("S1", 7, "600000001", 0, True, True, "delivered", T0)
    since = T0 - timedelta(hours=1)
    first = await store.apply_report(report, T0 + timedelta(seconds=2), since=since)
    second = await store.apply_report(report, T0 + timedelta(seconds=3), since=since)
    assert first is not None
    assert second is not None
    assert (first.message_id, first.message_status) == ("m1", MessageStatus.DELIVERED)
    assert second.message_id == "m2"
    assert await store.apply_report(report, T0, since=since) is None
    assert await store.unmatched_reports() == 1


async def test_expiry_and_report_timeouts(store: Store) -> None:
    await store.insert_messages(
        [message("old", expires_at=T0 + timedelta(minutes=1)), message("sent", B)]
    )
    await send_all(store, "sent", "S1", T0)
    assert await store.next_expiry() == T0 + timedelta(minutes=1)
    assert await store.expire_due(T0 + timedelta(minutes=1)) == ["old"]
    assert await store.next_report_deadline() == T0
    assert await store.timeout_reports(T0, sent_before=T0) == 1
    msg = await store.get_message("sent")
    assert msg is not None
    assert msg.parts[0].status is PartStatus.REPORT_TIMEOUT
    assert store.queue_depth() == 0


async def test_opt_outs_and_idempotency_keys(store: Store) -> None:
    await store.insert_messages(
        [message("tx"), message("mk", category=Category.MARKETING), message("other", B)]
    )
    result = await store.add_optout(A, OptOutScope.MARKETING, "flow", T0)
    assert result.cancelled == ("mk",)
    [tx_ok, refused] = await store.insert_messages(
        [message("tx2"), message("mk2", category=Category.MARKETING)]
    )
    assert isinstance(tx_ok, Inserted)
    assert isinstance(refused, RecipientOptedOut)
    [first] = await store.insert_messages([message("k1", B, key="key")])
    [again, reused] = await store.insert_messages(
        [message("k2", B, key="key"), message("k3", B, key="key", body="other")]
    )
    assert isinstance(first, Inserted)
    assert isinstance(again, Inserted)
    assert (again.duplicate, again.message.id) == (True, "k1")
    assert isinstance(reused, IdempotencyKeyReused)
    assert await store.remove_optout(A, T0)
    assert not await store.remove_optout(A, T0)


async def test_concatenated_inbound_is_reassembled_or_shown_incomplete(store: Store) -> None:
    def part(seq: int, text: str, ref: int) -> NewInboundPart:
        return NewInboundPart("S1", "m", A, T0, f"h{ref}{seq}", text, ref, 2, seq, T0)

    rec, new = await store.record_inbound(part(2, "mundo", 9))
    assert (new, rec.status) == (True, InboundStatus.PARTIAL)
    rec, _ = await store.record_inbound(part(1, "hola ", 9))
    assert (rec.status, rec.text) == (InboundStatus.COMPLETE, "hola mundo")
    await store.record_inbound(part(1, "solo ", 10))
    assert await store.next_incomplete() == T0
    assert len(await store.mark_incomplete(T0, first_before=T0)) == 1
    assert [r.status for r in await store.list_inbound(limit=10, before_seq=None)] == [
        InboundStatus.INCOMPLETE,
        InboundStatus.COMPLETE,
    ]
    [done] = await store.unprocessed_inbound()
    await store.mark_inbound_processed(done.id)
    assert await store.unprocessed_inbound() == []


async def test_message_events_carry_a_sequence_per_message(store: Store) -> None:
    await store.insert_messages([message("m1"), message("m2", B)])
    await send_all(store, "m1", "S1", T0, first_mr=6)  # m1's part: MR 7
    await send_all(store, "m2", "S1", T0, first_mr=7)  # m2's part: MR 8
    report = ReportIn("S1", 7, "600000001", 0, True, True, "delivered", T0)
    assert await store.apply_report(report, T0, since=T0 - timedelta(hours=1)) is not None
    rows = await store.claim_webhooks(T0, 10)
    seen = [
        (body["data"]["id"], body["event"], body["sequence"])
        for body in (json.loads(r.payload_json) for r in rows)
    ]
    assert seen == [
        ("m1", "message.sent", 1),
        ("m2", "message.sent", 1),
        ("m1", "message.delivered", 2),
    ]
