"""The store on SQLite files and on PostgreSQL (the ``store`` fixture): migrations, pragmas, the
webhook outbox, inbound keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest

from gatewayd.store import (
    InboundStatus,
    NewInboundPart,
    OptOutScope,
    Store,
    open_store,
)
from gatewayd.store.migrate import migrations

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_migrations_run_once_and_set_wal_and_version(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    for _ in range(2):
        s = await open_store(f"sqlite://{path}")
        await s.close()
    async with aiosqlite.connect(path) as db:
        async with db.execute("PRAGMA user_version") as cur:
            assert (await cur.fetchone()) == (migrations()[-1].version,)
        async with db.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone()) == ("wal",)


async def test_unsupported_database_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported scheme"):
        await open_store("mysql://x")


async def test_outbox_claim_retry_deliver_and_give_up(store: Store) -> None:
    result = await store.add_optout("+34600000001", OptOutScope.ALL, "api", T0)
    assert result.record.scope is OptOutScope.ALL
    await store.remove_optout("+34600000001", T0)
    [created, removed] = await store.claim_webhooks(T0, 10)
    assert (created.event, removed.event) == ("optout.created", "optout.removed")
    body = json.loads(created.payload_json)
    assert body["data"]["number"] == "+34600000001"
    assert body["created_at"] == "2026-03-01T12:00:00.000000Z"
    # Claimed rows are leased: not handed out again while their attempt runs.
    assert await store.claim_webhooks(T0, 10) == []
    await store.webhook_delivered(created.id, T0)
    await store.webhook_retry(removed.id, T0 + timedelta(seconds=5), "HTTP 500")
    assert await store.claim_webhooks(T0 + timedelta(seconds=4), 10) == []
    [again] = await store.claim_webhooks(T0 + timedelta(seconds=5), 10)
    assert (again.id, again.attempts) == (removed.id, 1)
    await store.webhook_gave_up(again.id, "HTTP 500")
    page = await store.list_webhook_failures(10)
    assert [(f.id, f.attempts, f.last_error) for f in page.items] == [(removed.id, 2, "HTTP 500")]
    assert page.to_json()["items"][0]["payload"]["event"] == "optout.removed"


async def test_an_unanswered_claim_is_retried_after_its_lease(store: Store) -> None:
    await store.add_optout("+34600000001", OptOutScope.MARKETING, "api", T0)
    [row] = await store.claim_webhooks(T0, 10)
    assert await store.claim_webhooks(T0 + timedelta(seconds=299), 10) == []
    [again] = await store.claim_webhooks(T0 + timedelta(seconds=300), 10)
    assert again.id == row.id


async def test_an_all_opt_out_is_never_narrowed(store: Store) -> None:
    await store.add_optout("+34600000001", OptOutScope.ALL, "sms", T0)
    res = await store.add_optout("+34600000001", OptOutScope.MARKETING, "flow", T0)
    assert res.record.scope is OptOutScope.ALL
    assert await store.optouts() == {"+34600000001": OptOutScope.ALL}


async def test_inbound_key_makes_a_reread_a_no_op(store: Store) -> None:
    part = NewInboundPart(
        identity="SIM1",
        modem="m1",
        sender="+34600000001",
        scts=T0,
        pdu_hash="abc",
        text="hola",
        concat_ref=None,
        concat_total=None,
        concat_seq=None,
        received_at=T0,
    )
    rec, new = await store.record_inbound(part)
    again, new_again = await store.record_inbound(part)
    assert (new, new_again) == (True, False)
    assert again.id == rec.id
    assert rec.status is InboundStatus.COMPLETE
    assert len(await store.list_inbound(limit=10, before_seq=None)) == 1
