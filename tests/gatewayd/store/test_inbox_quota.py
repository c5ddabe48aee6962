"""The read-side stores beside the core, the same on SQLite and PostgreSQL: conversations
(the inbox) and monthly sent counts, written through the core store and read through
``open_conversations`` / ``open_sent_counts``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gatewayd.store import NewInboundPart, OptOutScope, SqliteStore, Store
from gatewayd.store.conversations_base import Conversations, open_conversations
from gatewayd.store.postgres import PostgresStore
from gatewayd.store.quota_base import SentCounts, open_sent_counts
from gatewayd.store.timefmt import to_db
from tests.gatewayd.store.conftest import WEBHOOK_URL
from tests.gatewayd.store.test_store import T0, A, B, message, send_all
from tests.multinode.pgdb import fresh_schema

C = "+34600000003"
S = timedelta(seconds=1)


@dataclass
class Side:
    """The core store and the two readers over the same database."""

    store: Store
    inbox: Conversations
    counts: SentCounts


@pytest.fixture(params=["sqlite", "postgres"])
async def side(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Side]:
    if request.param == "sqlite":
        database = f"sqlite://{tmp_path / 's.db'}"
        store: Store = SqliteStore(str(tmp_path / "s.db"), webhook_url=WEBHOOK_URL)
        await store.open()
        async with _readers(store, database) as s:
            yield s
        await store.close()
        return
    async with fresh_schema() as dsn:
        pg = PostgresStore(dsn, webhook_url=WEBHOOK_URL, node="test")
        await pg.open()
        async with _readers(pg, dsn) as s:
            yield s
        await pg.close()


@asynccontextmanager
async def _readers(store: Store, database: str) -> AsyncIterator[Side]:
    """Both readers opened by the database string (the daemon's factories), then closed."""
    inbox = await open_conversations(database)
    assert inbox is not None
    counts = await open_sent_counts(database)
    assert counts is not None
    try:
        yield Side(store, inbox, counts)
    finally:
        await inbox.close()
        await counts.close()


def inbound(sender: str, text: str, at: datetime, *, ref: int | None = None) -> NewInboundPart:
    """One received SMS (``ref``: the first of two parts, so it stays partial)."""
    total, seq = (2, 1) if ref is not None else (None, None)
    return NewInboundPart("S1", "modem-1", sender, at, f"h{sender}{at}", text, ref, total, seq, at)


async def _fill(store: Store) -> None:
    """A at T0+1 out, T0+3 in; B at T0+2 out; C at T0+3 out (ties with A); a partial from B."""
    await store.insert_messages(
        [
            dataclasses.replace(message("a1", A), created_at=T0 + S),
            dataclasses.replace(message("b1", B), created_at=T0 + 2 * S),
            dataclasses.replace(message("c1", C), created_at=T0 + 3 * S),
        ]
    )
    await store.record_inbound(inbound(A, "¿Llega hoy?", T0 + 3 * S))
    await store.record_inbound(inbound(B, "first half ", T0 + 9 * S, ref=7))


async def test_conversations_newest_first_with_last_message_and_optout(side: Side) -> None:
    await _fill(side.store)
    await side.store.add_optout(B, OptOutScope.MARKETING, "api", T0 + 4 * S)
    rows = await side.inbox.conversations(limit=10)
    # A and C tie at T0+3: the larger number first. B's partial inbound is not shown.
    assert [(r.number, r.last_at, r.messages) for r in rows] == [
        (C, T0 + 3 * S, 1),
        (A, T0 + 3 * S, 2),
        (B, T0 + 2 * S, 1),
    ]
    assert (rows[1].last_direction, rows[1].last_text) == ("in", "¿Llega hoy?")
    assert (rows[2].last_direction, rows[2].last_text) == ("out", "text of b1")
    assert [r.optout for r in rows] == [None, None, "marketing"]


async def test_conversation_pages_follow_the_cursor_through_ties(side: Side) -> None:
    await _fill(side.store)
    first = await side.inbox.conversations(limit=1)
    assert [r.number for r in first] == [C]
    cursor = (to_db(first[-1].last_at), first[-1].number)
    rest = await side.inbox.conversations(limit=1, before=cursor)
    assert [r.number for r in rest] == [A]
    cursor = (to_db(rest[-1].last_at), rest[-1].number)
    assert [r.number for r in await side.inbox.conversations(limit=5, before=cursor)] == [B]
    # An empty key bounds the time only.
    everything_before = (to_db(T0 + 3 * S), "")
    assert [
        r.number for r in await side.inbox.conversations(limit=5, before=everything_before)
    ] == [
        C,
        A,
        B,
    ]


async def test_a_thread_interleaves_both_ways_newest_first(side: Side) -> None:
    await _fill(side.store)
    await side.store.insert_messages([dataclasses.replace(message("a2", A), created_at=T0 + 5 * S)])
    await send_all(side.store, "a2", "S1", T0 + 6 * S)
    rows = await side.inbox.thread(A, limit=10)
    assert [(e.direction, e.text, e.at) for e in rows] == [
        ("out", "text of a2", T0 + 5 * S),
        ("in", "¿Llega hoy?", T0 + 3 * S),
        ("out", "text of a1", T0 + S),
    ]
    assert [e.status for e in rows] == ["sent", "complete", "queued"]
    assert rows[1].modem == "modem-1"
    assert [e.id for e in await side.inbox.thread(B, limit=10)] == ["b1"]  # not the partial
    page = await side.inbox.thread(A, limit=2)
    after = await side.inbox.thread(A, limit=2, before=(to_db(page[-1].at), page[-1].id))
    assert [e.id for e in after] == ["a1"]


async def test_a_thread_pages_through_messages_of_one_moment_by_id(side: Side) -> None:
    await side.store.insert_messages([message(f"m{n}", A) for n in range(5)])
    seen: list[str] = []
    before: tuple[str, str] | None = None
    while page := await side.inbox.thread(A, limit=2, before=before):
        seen += [e.id for e in page]
        before = (to_db(page[-1].at), page[-1].id)
    assert seen == ["m4", "m3", "m2", "m1", "m0"]


async def test_sent_counts_count_parts_sent_by_a_sim_since_a_moment(side: Side) -> None:
    await side.store.insert_messages(
        [message("two", A, parts=2), message("other", B), message("queued", C)]
    )
    await send_all(side.store, "two", "S1", T0 + S)
    await send_all(side.store, "other", "S2", T0 + 2 * S)
    assert await side.counts.sent_since("S1", T0) == 2
    assert await side.counts.sent_since("S1", T0 + S) == 2  # at or after
    assert await side.counts.sent_since("S1", T0 + 2 * S) == 0
    assert await side.counts.sent_since("S2", T0) == 1
    assert await side.counts.sent_since("S3", T0) == 0


async def test_in_memory_sqlite_has_no_readers() -> None:
    # No second connection sees an in-memory database: the daemon runs without them.
    assert await open_conversations(":memory:") is None
    assert await open_sent_counts("sqlite://:memory:") is None
    with pytest.raises(ValueError, match="unsupported scheme"):
        await open_sent_counts("mysql://x")


async def test_a_sims_month_counts_its_sends_on_every_node() -> None:
    # One ICCID moves from node a to node b mid-month: b's count includes a's sends.
    async with fresh_schema() as dsn:
        a = PostgresStore(dsn, webhook_url=WEBHOOK_URL, node="a")
        b = PostgresStore(dsn, webhook_url=WEBHOOK_URL, node="b")
        await a.open()
        await b.open()
        counts = await open_sent_counts(dsn)
        assert counts is not None
        try:
            await a.insert_messages([message("on-a", A, parts=2), message("on-b", B)])
            await send_all(a, "on-a", "8934000000000000001", T0 + S)
            await a.close()  # gives up its SIMs: the ICCID is free for b
            await send_all(b, "on-b", "8934000000000000001", T0 + 2 * S)
            assert await counts.sent_since("8934000000000000001", T0) == 3
            assert await counts.sent_since("8934000000000000001", T0 + 2 * S) == 1
        finally:
            await counts.close()
            await a.close()
            await b.close()
