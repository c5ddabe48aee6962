"""``gatewayd store export|import``: a SQLite host moves to PostgreSQL with every row intact."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gatewayd.cli import main
from gatewayd.store import (
    Category,
    MessageStatus,
    NewInboundPart,
    NewMessage,
    NewPart,
    OptOutScope,
    Priority,
    ReportIn,
    SqliteStore,
)
from gatewayd.store.flows_base import (
    CustomerRecord,
    EnrolmentRecord,
    EnrolmentStatus,
    NewEvent,
    NewSend,
    OrderRecord,
)
from gatewayd.store.flows_postgres import PostgresFlowStore
from gatewayd.store.flows_sqlite import SqliteFlowStore
from gatewayd.store.migrate import migrations
from gatewayd.store.postgres import PostgresStore
from gatewayd.store.transfer import TransferError, export_store, import_store
from tests.multinode.pgdb import fresh_schema

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def message(n: int, *, key: str | None = None) -> NewMessage:
    return NewMessage(
        id=f"m{n}",
        recipient=f"+3460000000{n}",
        text=f"envío {n}",
        category=Category.TRANSACTIONAL,
        priority=Priority.NORMAL,
        encoding="ucs2",
        parts=(NewPart(1, f"00{n:02d}", 20), NewPart(2, f"01{n:02d}", 21)),
        replaced_chars=(("á", "a"),),
        send_at=T0,
        expires_at=T0 + timedelta(hours=1),
        modem=None,
        pool=None,
        metadata={"order": n},
        callback_url="http://127.0.0.1:1/cb",
        force_ucs2=False,
        smart=True,
        created_at=T0,
        idempotency_key=key,
        request_hash="h" if key else None,
    )


async def fill(store: SqliteStore) -> None:
    """One message sent and delivered, one queued, an opt-out, an inbound SMS, a report."""
    await store.insert_messages([message(1, key="k1"), message(2)])
    assert await store.claim("m1", "SIM1", T0) is not None
    for seq in (1, 2):
        await store.part_sending("m1", seq, "SIM1", "modem1", T0)
        await store.part_sent("m1", seq, 7 + seq, T0)
    report = ReportIn("SIM1", 8, "+34600000001", 0, True, True, "delivered", T0)
    assert await store.apply_report(report, T0, since=T0 - timedelta(hours=1)) is not None
    await store.add_optout("+34600000009", OptOutScope.MARKETING, "api", T0)
    part = NewInboundPart("SIM1", "modem1", "+34600000003", T0, "ab", "hola", None, None, None, T0)
    await store.record_inbound(part)


async def test_sqlite_to_postgres_round_trip_keeps_every_row(tmp_path: Path) -> None:
    src = SqliteStore(str(tmp_path / "src.db"), webhook_url="http://127.0.0.1:1/h")
    await src.open()
    await fill(src)
    before = await src.get_message("m1")
    await src.close()
    dump = io.StringIO()
    exported = await export_store(f"sqlite://{tmp_path / 'src.db'}", dump)
    assert (exported.rows["messages"], exported.rows["parts"]) == (2, 4)
    async with fresh_schema() as dsn:
        imported = await import_store(dsn, io.StringIO(dump.getvalue()))
        assert imported.rows == exported.rows
        again = io.StringIO()
        await export_store(dsn, again)
        assert again.getvalue() == dump.getvalue()  # row for row, value for value
        pg = PostgresStore(dsn, node="n1")
        await pg.open()
        try:
            assert await pg.get_message("m1") == before
            assert pg.queue_depth() == 1  # m2 still queued
            assert await pg.optouts() == {"+34600000009": OptOutScope.MARKETING}
            assert len(await pg.list_inbound(limit=10, before_seq=None)) == 1
            # Row numbers continue after the imported ones; the idempotency key still holds.
            [dup, new] = await pg.insert_messages([message(1, key="k1"), message(3)])
            assert not isinstance(dup, Exception)
            assert not isinstance(new, Exception)
            assert dup.duplicate
            assert (new.message.seq, new.message.status) == (3, MessageStatus.QUEUED)
        finally:
            await pg.close()
        with pytest.raises(TransferError, match="table messages is not empty"):
            await import_store(dsn, io.StringIO(dump.getvalue()))


async def test_a_bad_export_line_leaves_the_target_untouched(tmp_path: Path) -> None:
    lines = [
        json.dumps({"format": "gatewayd-store", "version": 1}),
        json.dumps(
            {
                "table": "optouts",
                "row": {
                    "seq": 1,
                    "number": "+34600000001",
                    "scope": "all",
                    "source": "api",
                    "created_at": "2026-03-01T12:00:00.000000Z",
                },
            }
        ),
        "{not json",
    ]
    target = f"sqlite://{tmp_path / 't.db'}"
    with pytest.raises(TransferError, match="line 3: not JSON"):
        await import_store(target, io.StringIO("\n".join(lines) + "\n"))
    out = io.StringIO()
    assert (await export_store(target, out)).total() == 0
    with pytest.raises(TransferError, match="line 1: not a gatewayd-store v1 export"):
        await import_store(target, io.StringIO('{"format": "other"}\n'))


def test_cli_migrate_export_and_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = tmp_path / "a.db", tmp_path / "b.db"
    assert main(["migrate", "--database", str(src)]) == 0
    assert capsys.readouterr().out == f"schema v{migrations()[-1].version}\n"
    dump = tmp_path / "dump.jsonl"
    assert main(["store", "export", "--database", str(src), "--output", str(dump)]) == 0
    assert main(["store", "import", "--database", str(dst), "--input", str(dump)]) == 0
    assert "import: 0 rows" in capsys.readouterr().err
    assert main(["store", "import", "--database", str(dst), "--input", str(tmp_path / "no")]) == 1
    assert "No such file" in capsys.readouterr().err


async def fill_flows(path: str) -> None:
    """A customer with an order, an enrolment that sent a step, a link clicked, an answer,
    a preference choice (and its timeline entry) and a secret."""
    flows = SqliteFlowStore(path)
    await flows.open()
    try:
        customer = CustomerRecord(
            "c-1", "+34600000001", "Ana", "es_ES", None, "ES", True, True, "checkout", T0
        )
        order = OrderRecord("O-1", "c-1", T0, "placed", Decimal("89.90"), "EUR", {"n": 1})
        event = NewEvent("evt-1", "order.placed", "c-1", "O-1", T0, T0, '{"data": {"a": 1}}')
        assert await flows.ingest(event, customer, order)
        await flows.mark_processed("evt-1")
        enrolment = EnrolmentRecord(
            "e-1", "review", "c-1", "O-1", "evt-1", EnrolmentStatus.ACTIVE, 0, T0, None, T0, None
        )
        assert await flows.enrol([enrolment], T0) == ["e-1"]
        await flows.record_send(
            NewSend(
                "e-1", "review", "ask", "c-1", "+34600000001", "marketing", "sent", "m1", T0, T0
            )
        )
        await flows.add_links("e-1", "ask", [("abc", "https://shop.example/r")], T0)
        await flows.record_click(
            "abc", T0, method="GET", user_agent="ua", counted=True, reason=None
        )
        assert await flows.record_answer("e-1", "ask", "4", "in-1", T0)
        await flows.set_preferences("c-1", "reviews", "reduced", source="api", at=T0)
        await flows.secret("page")
    finally:
        await flows.close()


async def test_flows_move_with_the_store(tmp_path: Path) -> None:
    path = str(tmp_path / "src.db")
    src = SqliteStore(path)
    await src.open()
    await fill(src)
    await src.close()
    await fill_flows(path)
    dump = io.StringIO()
    exported = await export_store(f"sqlite://{path}", dump)
    assert exported.rows["flow_enrolments"] == 1
    assert exported.rows["customer_timeline"] == 1
    async with fresh_schema() as dsn:
        imported = await import_store(dsn, io.StringIO(dump.getvalue()))
        assert imported.rows == exported.rows
        again = io.StringIO()
        await export_store(dsn, again)
        assert again.getvalue() == dump.getvalue()  # row for row, value for value
        flows = PostgresFlowStore(dsn, node="n1")
        await flows.open()
        try:
            customer = await flows.customer("c-1")
            assert customer is not None
            assert (customer.name, customer.consent_at) == ("Ana", T0)
            assert await flows.event_data("evt-1") == {"a": 1}
            assert await flows.unprocessed_events() == []
            [due] = await flows.claim_due(T0, 10)  # the enrolment runs on where it was
            assert (due.id, due.step) == ("e-1", 0)
            sent = await flows.sent_step("e-1", "ask")
            assert sent is not None
            assert sent.message_id == "m1"
            link = await flows.link("abc")
            assert link is not None
            assert link.delivered_at == T0  # m1 was delivered (the core's parts moved too)
            assert await flows.clicked("e-1", "ask")
            assert await flows.answer("e-1", "ask") == "4"
            assert await flows.preferences("c-1") == ("reviews", "reduced")
            with sqlite3.connect(path) as db:
                [(value,)] = db.execute("SELECT value FROM customer_secrets").fetchall()
            assert await flows.secret("page") == bytes.fromhex(value)  # links stay valid
            # Row numbers continue after the imported ones.
            await flows.set_preferences("c-1", "reviews", "normal", source="api", at=T0)
            assert [e.what for e in await flows.timeline("c-1", 10)] == [
                "preferences",
                "preferences",
            ]
        finally:
            await flows.close()
