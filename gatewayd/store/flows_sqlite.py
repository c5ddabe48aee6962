"""The flows' persistence on the gateway's SQLite file (see ``flows_base``).

It opens its own connection to the file the :class:`~gatewayd.store.SqliteStore` already
opened and migrated (WAL: readers never block, and ``busy_timeout`` lets the two writers
take turns), so the core's store needs no change. Its write transactions are short and
serialised by one lock. Metrics read the core's tables (messages, parts, inbound, opt-outs)
by join: same file, same schema owner (the store layer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import aiosqlite

from gatewayd.store import flows_rows as fr
from gatewayd.store.flows_base import (
    CustomerRecord,
    EnrolmentRecord,
    EnrolmentStatus,
    LinkTarget,
    NewEvent,
    NewSend,
    OrderRecord,
    StepCounts,
    TimelineEntry,
)
from gatewayd.store.numbers import erased
from gatewayd.store.timefmt import from_db, opt_from_db, opt_to_db, to_db


class SqliteFlowStore:
    """Flows persistence on one SQLite file (open it after the gateway's store)."""

    def __init__(self, path: str) -> None:
        if path == ":memory:":
            raise ValueError("the flows store shares the gateway's file: ':memory:' cannot")
        self._path = path.removeprefix("sqlite://")
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Open the connection (the schema is migrated by the gateway's store)."""
        db = await aiosqlite.connect(self._path, isolation_level=None)
        db.row_factory = sqlite3.Row
        await db.execute("PRAGMA synchronous=FULL")
        await db.execute("PRAGMA foreign_keys=ON")
        await db.execute("PRAGMA busy_timeout=5000")
        self._db = db

    async def close(self) -> None:
        """Close the connection."""
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def _c(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("flows store is not open")
        return self._db

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            db = self._c
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    async def _one(self, sql: str, params: Sequence[Any]) -> sqlite3.Row | None:
        async with self._lock, self._c.execute(sql, params) as cur:
            row: sqlite3.Row | None = await cur.fetchone()
            return row

    async def _all(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        async with self._lock, self._c.execute(sql, params) as cur:
            return list(await cur.fetchall())

    # -- events, customers, orders -------------------------------------------------------

    async def ingest(
        self,
        event: NewEvent,
        customer: CustomerRecord | None,
        order: OrderRecord | None,
    ) -> bool:
        """Store the event (and customer, order) in one commit; False if its id was seen and
        processed (an event stored but not processed before a crash is taken again)."""
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT OR IGNORE INTO flow_events (event_id, type, customer_id, order_id,"
                " occurred_at, received_at, payload) VALUES (?,?,?,?,?,?,?)",
                (
                    event.event_id,
                    event.type,
                    event.customer_id,
                    event.order_id,
                    to_db(event.occurred_at),
                    to_db(event.received_at),
                    event.payload,
                ),
            )
            if cur.rowcount == 0:
                async with db.execute(
                    "SELECT processed FROM flow_events WHERE event_id = ?", (event.event_id,)
                ) as seen:
                    row = await seen.fetchone()
                if row is None or row["processed"]:
                    return False
            now = to_db(event.received_at)
            if customer is not None:
                await db.execute(
                    "INSERT INTO flow_customers (id, phone, name, locale, timezone, country,"
                    " consent_transactional, consent_marketing, consent_source, consent_at,"
                    " updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET"
                    " phone=excluded.phone, name=COALESCE(excluded.name, name),"
                    " locale=COALESCE(excluded.locale, locale),"
                    " timezone=COALESCE(excluded.timezone, timezone), country=excluded.country,"
                    " consent_transactional=excluded.consent_transactional,"
                    " consent_marketing=excluded.consent_marketing,"
                    " consent_source=excluded.consent_source, consent_at=excluded.consent_at,"
                    " updated_at=excluded.updated_at",
                    (
                        customer.id,
                        customer.phone,
                        customer.name,
                        customer.locale,
                        customer.timezone,
                        customer.country,
                        int(customer.consent_transactional),
                        int(customer.consent_marketing),
                        customer.consent_source,
                        opt_to_db(customer.consent_at),
                        now,
                    ),
                )
            if order is not None:
                await db.execute(
                    "INSERT INTO flow_orders (id, customer_id, placed_at, status, total, currency,"
                    " payload, updated_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE"
                    " SET status=excluded.status, total=excluded.total,"
                    " currency=excluded.currency, payload=excluded.payload,"
                    " updated_at=excluded.updated_at",
                    (
                        order.id,
                        order.customer_id,
                        to_db(order.placed_at),
                        order.status,
                        str(order.total),
                        order.currency,
                        json.dumps(order.data, ensure_ascii=False),
                        now,
                    ),
                )
            return True

    async def mark_processed(self, event_id: str) -> None:
        """Record that everything an event starts, ends or resumes is done."""
        async with self._tx() as db:
            await db.execute("UPDATE flow_events SET processed = 1 WHERE event_id = ?", (event_id,))

    async def unprocessed_events(self) -> list[NewEvent]:
        """Events stored but not processed (a crash came in between), oldest first."""
        rows = await self._all("SELECT * FROM flow_events WHERE processed = 0 ORDER BY seq", ())
        return [fr.event(r) for r in rows]

    async def event_data(self, event_id: str) -> dict[str, Any]:
        """The ``data`` object an event carried (empty when none)."""
        row = await self._one("SELECT payload FROM flow_events WHERE event_id = ?", (event_id,))
        return fr.event_data(None if row is None else row["payload"])

    async def seen_event(
        self, type: str, customer_id: str, order_id: str | None, since: datetime | None
    ) -> bool:
        """Whether an event of ``type`` for the customer (and order) was stored (since then)."""
        row = await self._one(
            "SELECT 1 FROM flow_events WHERE type = ? AND customer_id = ?"
            " AND (? IS NULL OR order_id = ?) AND (? IS NULL OR received_at >= ?) LIMIT 1",
            (type, customer_id, order_id, order_id, opt_to_db(since), opt_to_db(since)),
        )
        return row is not None

    async def customer(self, customer_id: str) -> CustomerRecord | None:
        """One customer, or None."""
        row = await self._one("SELECT * FROM flow_customers WHERE id = ?", (customer_id,))
        return None if row is None else fr.customer(row)

    async def order(self, order_id: str) -> OrderRecord | None:
        """One order, or None."""
        row = await self._one("SELECT * FROM flow_orders WHERE id = ?", (order_id,))
        return None if row is None else fr.order(row)

    async def orders_of(self, customer_id: str) -> list[OrderRecord]:
        """Every order of a customer, oldest first."""
        rows = await self._all(
            "SELECT * FROM flow_orders WHERE customer_id = ? ORDER BY placed_at", (customer_id,)
        )
        return [fr.order(r) for r in rows]

    # -- enrolments ----------------------------------------------------------------------

    async def enrol(self, items: list[EnrolmentRecord], now: datetime) -> list[str]:
        """Insert enrolments not already made from the same event; returns the new ids."""
        created: list[str] = []
        async with self._tx() as db:
            for e in items:
                cur = await db.execute(
                    "INSERT OR IGNORE INTO flow_enrolments (id, flow, customer_id, order_id,"
                    " event_id, status, step, due_at, waiting_for, started_at, updated_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        e.id,
                        e.flow,
                        e.customer_id,
                        e.order_id,
                        e.event_id,
                        e.status.value,
                        e.step,
                        opt_to_db(e.due_at),
                        e.waiting_for,
                        to_db(e.started_at),
                        to_db(now),
                    ),
                )
                if cur.rowcount:
                    created.append(e.id)
        return created

    async def enrolment(self, enrolment_id: str) -> EnrolmentRecord | None:
        """One enrolment, or None."""
        row = await self._one("SELECT * FROM flow_enrolments WHERE id = ?", (enrolment_id,))
        return None if row is None else fr.enrolment(row)

    async def open_enrolments(self, customer_id: str) -> list[EnrolmentRecord]:
        """A customer's enrolments still running (active or waiting), oldest first."""
        rows = await self._all(
            "SELECT * FROM flow_enrolments WHERE customer_id = ?"
            " AND status IN ('active','waiting') ORDER BY started_at, rowid",
            (customer_id,),
        )
        return [fr.enrolment(r) for r in rows]

    async def claim_due(self, now: datetime, limit: int) -> list[EnrolmentRecord]:
        """Enrolments whose next step (or wait timeout) is due, earliest first (one process
        runs them all: nothing to claim)."""
        rows = await self._all(
            "SELECT * FROM flow_enrolments WHERE status IN ('active','waiting')"
            " AND due_at IS NOT NULL AND due_at <= ? ORDER BY due_at, rowid LIMIT ?",
            (to_db(now), limit),
        )
        return [fr.enrolment(r) for r in rows]

    async def next_due(self) -> datetime | None:
        """The earliest due time of any running enrolment."""
        row = await self._one(
            "SELECT MIN(due_at) AS t FROM flow_enrolments WHERE status IN ('active','waiting')",
            (),
        )
        return opt_from_db(row["t"]) if row is not None else None

    async def move(
        self,
        enrolment_id: str,
        *,
        status: EnrolmentStatus,
        step: int,
        due_at: datetime | None,
        waiting_for: str | None,
        now: datetime,
        exit_reason: str | None = None,
    ) -> None:
        """Set where an enrolment is."""
        async with self._tx() as db:
            await db.execute(
                "UPDATE flow_enrolments SET status = ?, step = ?, due_at = ?, waiting_for = ?,"
                " exit_reason = ?, updated_at = ? WHERE id = ?",
                (
                    status.value,
                    step,
                    opt_to_db(due_at),
                    waiting_for,
                    exit_reason,
                    to_db(now),
                    enrolment_id,
                ),
            )

    @contextlib.asynccontextmanager
    async def number_lock(self, phone: str) -> AsyncIterator[None]:
        """Nothing to take: one engine in one process sends, under its own lock."""
        yield

    # -- links and clicks ----------------------------------------------------------------

    async def add_links(
        self, enrolment_id: str, step: str, links: list[tuple[str, str]], now: datetime
    ) -> None:
        """Store ``(code, url)`` pairs made for one step of one enrolment."""
        async with self._tx() as db:
            await db.executemany(
                "INSERT INTO flow_links (code, url, enrolment_id, step, created_at)"
                " VALUES (?,?,?,?,?)",
                [(code, url, enrolment_id, step, to_db(now)) for code, url in links],
            )

    async def links_of(self, enrolment_id: str, step: str) -> dict[str, str]:
        """The links already made for a step: url -> code (a retried step reuses them)."""
        rows = await self._all(
            "SELECT code, url FROM flow_links WHERE enrolment_id = ? AND step = ?",
            (enrolment_id, step),
        )
        return {r["url"]: r["code"] for r in rows}

    async def link(self, code: str) -> LinkTarget | None:
        """Where ``code`` goes, and when the message that carried it was delivered."""
        row = await self._one(
            "SELECT l.code, l.url, l.enrolment_id, l.step, e.customer_id, e.flow,"
            " (SELECT MAX(p.delivered_at) FROM flow_sends s JOIN parts p"
            "   ON p.message_id = s.message_id"
            "   WHERE s.enrolment_id = l.enrolment_id AND s.step = l.step) AS delivered_at"
            " FROM flow_links l LEFT JOIN flow_enrolments e ON e.id = l.enrolment_id"
            " WHERE l.code = ?",
            (code,),
        )
        if row is None:
            return None
        return LinkTarget(
            row["code"],
            row["url"],
            row["enrolment_id"],
            row["step"],
            row["customer_id"],
            row["flow"],
            opt_from_db(row["delivered_at"]),
        )

    async def record_click(
        self,
        code: str,
        at: datetime,
        *,
        method: str,
        user_agent: str | None,
        counted: bool,
        reason: str | None,
    ) -> int:
        """Record one hit on a short link; returns its sequence number."""
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT INTO flow_clicks (code, at, method, user_agent, counted, reason)"
                " VALUES (?,?,?,?,?,?)",
                (code, to_db(at), method, (user_agent or "")[:500], int(counted), reason),
            )
            return int(cur.lastrowid or 0)

    async def clicked(self, enrolment_id: str, step: str) -> bool:
        """Whether a counted click hit a link of that step."""
        row = await self._one(
            "SELECT 1 FROM flow_clicks c JOIN flow_links l ON l.code = c.code"
            " WHERE l.enrolment_id = ? AND l.step = ? AND c.counted = 1 LIMIT 1",
            (enrolment_id, step),
        )
        return row is not None

    # -- sends ---------------------------------------------------------------------------

    async def record_send(self, send: NewSend) -> None:
        """Record what a send step did (once per enrolment and step)."""
        async with self._tx() as db:
            await db.execute(
                "INSERT OR IGNORE INTO flow_sends (enrolment_id, flow, step, customer_id, phone,"
                " category, outcome, message_id, at, send_at, variant)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    send.enrolment_id,
                    send.flow,
                    send.step,
                    send.customer_id,
                    send.phone,
                    send.category,
                    send.outcome,
                    send.message_id,
                    to_db(send.at),
                    to_db(send.send_at),
                    send.variant,
                ),
            )

    async def sent_step(self, enrolment_id: str, step: str) -> NewSend | None:
        """What a send step of an enrolment did, if it ran."""
        row = await self._one(
            "SELECT * FROM flow_sends WHERE enrolment_id = ? AND step = ?", (enrolment_id, step)
        )
        return None if row is None else fr.send(row)

    async def send_times(
        self, customer_id: str, since: datetime, category: str | None
    ) -> list[datetime]:
        """When messages to a customer go (``send_at``) from ``since`` on, all or one category."""
        rows = await self._all(
            "SELECT send_at FROM flow_sends WHERE customer_id = ? AND outcome = 'sent'"
            " AND send_at >= ? AND (? IS NULL OR category = ?) ORDER BY send_at",
            (customer_id, to_db(since), category, category),
        )
        return [from_db(r["send_at"]) for r in rows]

    async def replied(self, phone: str, since: datetime) -> bool:
        """Whether an SMS from ``phone`` arrived after ``since``."""
        row = await self._one(
            "SELECT 1 FROM inbound_messages WHERE sender = ? AND first_received_at > ? LIMIT 1",
            (phone, to_db(since)),
        )
        return row is not None

    async def optout_scope(self, phone: str) -> str | None:
        """The scope of ``phone``'s opt-out entry, if any."""
        row = await self._one(
            "SELECT scope FROM optouts WHERE number IN (?, ?) ORDER BY scope = 'all' DESC",
            (phone, erased(phone)),
        )
        return None if row is None else str(row["scope"])

    # -- privacy: export, erase, retention -------------------------------------------------

    async def export_customer(self, customer_id: str) -> dict[str, Any] | None:
        """Everything stored about a customer (None when unknown), as JSON-ready rows."""
        customer = await self._one("SELECT * FROM flow_customers WHERE id = ?", (customer_id,))
        if customer is None:
            return None
        phone = customer["phone"]

        async def rows(sql: str, *params: Any) -> list[dict[str, Any]]:
            return [dict(r) for r in await self._all(sql, params)]

        prefs = await rows("SELECT * FROM customer_preferences WHERE customer_id = ?", customer_id)
        return {
            "profile": dict(customer),
            "consents": {
                "transactional": bool(customer["consent_transactional"]),
                "marketing": bool(customer["consent_marketing"]),
                "source": customer["consent_source"],
                "at": customer["consent_at"],
            },
            "preferences": prefs[0] if prefs else None,
            "optouts": await rows(
                "SELECT number, scope, source, created_at FROM optouts WHERE number IN (?, ?)",
                phone,
                erased(phone),
            ),
            "orders": await rows(
                "SELECT * FROM flow_orders WHERE customer_id = ? ORDER BY placed_at", customer_id
            ),
            "events": await rows(
                "SELECT event_id, type, order_id, occurred_at, received_at, payload"
                " FROM flow_events WHERE customer_id = ? ORDER BY occurred_at",
                customer_id,
            ),
            "enrolments": await rows(
                "SELECT * FROM flow_enrolments WHERE customer_id = ? ORDER BY started_at",
                customer_id,
            ),
            "messages": await rows(
                "SELECT id, recipient, text, category, status, send_at, created_at, updated_at,"
                " error_code, metadata FROM messages WHERE recipient = ? ORDER BY seq",
                phone,
            ),
            "inbound": await rows(
                "SELECT id, sender, text, status, first_received_at FROM inbound_messages"
                " WHERE sender = ? ORDER BY seq",
                phone,
            ),
            "clicks": await rows(
                "SELECT c.code, l.url, l.step, c.at, c.method, c.user_agent, c.counted"
                " FROM flow_clicks c JOIN flow_links l ON l.code = c.code"
                " JOIN flow_enrolments e ON e.id = l.enrolment_id"
                " WHERE e.customer_id = ? ORDER BY c.at",
                customer_id,
            ),
            "survey_answers": await rows(
                "SELECT a.* FROM survey_answers a JOIN flow_enrolments e"
                " ON e.id = a.enrolment_id WHERE e.customer_id = ?",
                customer_id,
            ),
            "timeline": await rows(
                "SELECT at, what, reason, flow, step, kind, message_id, detail"
                " FROM customer_timeline WHERE customer_id = ? ORDER BY seq",
                customer_id,
            ),
        }

    async def secret(self, name: str) -> bytes:
        """The install's secret called ``name``, made (32 random bytes) on first use."""
        async with self._tx() as db:
            await db.execute(
                "INSERT OR IGNORE INTO customer_secrets (name, value) VALUES (?, ?)",
                (name, secrets.token_hex(32)),
            )
            async with db.execute(
                "SELECT value FROM customer_secrets WHERE name = ?", (name,)
            ) as cur:
                row = await cur.fetchone()
        assert row is not None  # inserted above when missing
        return bytes.fromhex(row["value"])

    async def queued_to(self, phone: str) -> list[str]:
        """Ids of the messages still queued to ``phone``."""
        rows = await self._all(
            "SELECT id FROM messages WHERE recipient = ? AND status = 'queued'", (phone,)
        )
        return [str(r["id"]) for r in rows]

    async def erase_customer(self, customer_id: str, at: datetime) -> bool:
        """Erase a customer's personal data in one commit (False when unknown).

        The number becomes its one-way hash, kept only in the opt-out list (an opt-out
        survives erasure); message and inbound texts, PDUs, event and order payloads, the
        name and the preferences go. Counts for metrics stay (sends, orders' totals). The
        freed bytes are zeroed (secure_delete), and the file is rebuilt (VACUUM) and the WAL
        emptied so no old copy of a page is left behind.
        """
        row = await self._one("SELECT phone FROM flow_customers WHERE id = ?", (customer_id,))
        if row is None:
            return False
        phone = str(row["phone"])
        gone = erased(phone)
        await self._c.execute("PRAGMA secure_delete = ON")
        async with self._tx() as db:
            opt = await (
                await db.execute("SELECT scope FROM optouts WHERE number = ?", (phone,))
            ).fetchone()
            if opt is not None:
                await db.execute("DELETE FROM optouts WHERE number = ?", (gone,))
                await db.execute(
                    "UPDATE optouts SET number = ?, source = 'erased' WHERE number = ?",
                    (gone, phone),
                )
            ids = [
                r[0]
                for r in await (
                    await db.execute("SELECT id FROM messages WHERE recipient = ?", (phone,))
                ).fetchall()
            ]
            for mid in ids:
                await db.execute("UPDATE parts SET pdu = '' WHERE message_id = ?", (mid,))
                await db.execute("UPDATE history SET detail = NULL WHERE message_id = ?", (mid,))
            await db.execute(
                "UPDATE messages SET text = '', recipient = ?, recipient_digits = '',"
                " callback_url = NULL WHERE recipient = ?",
                (gone, phone),
            )
            await db.execute("DELETE FROM sticky_recipients WHERE recipient = ?", (phone,))
            await db.execute(
                "UPDATE unmatched_reports SET recipient = ? WHERE recipient = ?", (gone, phone)
            )
            await db.execute(
                "UPDATE inbound_parts SET text = '', sender = ? WHERE sender = ?", (gone, phone)
            )
            await db.execute(
                "UPDATE inbound_messages SET text = '', sender = ? WHERE sender = ?", (gone, phone)
            )
            # A webhook carries the number (and maybe the text): erasure wins over delivery.
            await db.execute("DELETE FROM webhook_outbox WHERE instr(payload, ?) > 0", (phone,))
            await db.execute(
                "UPDATE flow_customers SET phone = ?, name = NULL, timezone = NULL,"
                " country = NULL, consent_source = NULL WHERE id = ?",
                (gone, customer_id),
            )
            await db.execute(
                "UPDATE flow_events SET payload = '{}', processed = 1 WHERE customer_id = ?",
                (customer_id,),
            )
            await db.execute(
                "UPDATE flow_orders SET payload = '{}' WHERE customer_id = ?", (customer_id,)
            )
            await db.execute(
                "UPDATE flow_sends SET phone = ? WHERE customer_id = ?", (gone, customer_id)
            )
            await db.execute(
                "UPDATE flow_enrolments SET status = 'exited', exit_reason = 'erased',"
                " due_at = NULL, waiting_for = NULL, updated_at = ?"
                " WHERE customer_id = ? AND status IN ('active', 'waiting')",
                (to_db(at), customer_id),
            )
            await db.execute(
                "DELETE FROM customer_preferences WHERE customer_id = ?", (customer_id,)
            )
            await db.execute(
                "INSERT INTO customer_timeline (customer_id, at, what, reason) VALUES (?,?,?,?)",
                (customer_id, to_db(at), "erased", "request"),
            )
        async with self._lock:
            await self._c.execute("VACUUM")
            await self._c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return True

    async def purge_texts(self, before: datetime) -> tuple[int, int]:
        """Retention: empty the texts (and PDUs) of final messages and the bodies of inbound
        messages older than ``before``; returns (messages, inbound) purged."""
        cut = to_db(before)
        await self._c.execute("PRAGMA secure_delete = ON")
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE messages SET text = '' WHERE created_at < ? AND text != ''"
                " AND status NOT IN ('queued', 'sending')",
                (cut,),
            )
            messages = cur.rowcount
            await db.execute(
                "UPDATE parts SET pdu = '' WHERE pdu != '' AND message_id IN (SELECT id FROM"
                " messages WHERE created_at < ? AND status NOT IN ('queued', 'sending'))",
                (cut,),
            )
            cur = await db.execute(
                "UPDATE inbound_messages SET text = '' WHERE first_received_at < ?"
                " AND text != '' AND status != 'partial'",
                (cut,),
            )
            inbound = cur.rowcount
            await db.execute(
                "UPDATE inbound_parts SET text = '' WHERE received_at < ? AND text != ''"
                " AND inbound_id IN (SELECT id FROM inbound_messages WHERE status != 'partial')",
                (cut,),
            )
        return messages, inbound

    # -- customers: preferences and timeline ---------------------------------------------

    async def customer_by_phone(self, phone: str) -> CustomerRecord | None:
        """The customer last seen with ``phone`` (E.164), or None."""
        row = await self._one(
            "SELECT * FROM flow_customers WHERE phone = ? ORDER BY updated_at DESC LIMIT 1",
            (phone,),
        )
        return None if row is None else fr.customer(row)

    async def latest_occurred(self, type: str, order_id: str) -> datetime | None:
        """When the latest event of ``type`` for the order happened (its ``occurred_at``)."""
        row = await self._one(
            "SELECT MAX(occurred_at) AS t FROM flow_events WHERE type = ? AND order_id = ?",
            (type, order_id),
        )
        return None if row is None else opt_from_db(row["t"])

    async def queued_sends(self, flows: Sequence[str], order_id: str) -> list[NewSend]:
        """Sends of ``flows`` for the order whose message is still queued."""
        marks = ",".join("?" * len(flows))
        rows = await self._all(
            f"SELECT s.* FROM flow_sends s JOIN flow_enrolments e ON e.id = s.enrolment_id"
            f" JOIN messages m ON m.id = s.message_id"
            f" WHERE s.flow IN ({marks}) AND e.order_id = ? AND m.status = 'queued'",
            (*flows, order_id),
        )
        return [fr.send(r) for r in rows]

    async def recent_sends(self, customer_id: str, since: datetime) -> list[NewSend]:
        """The customer's sent flow messages from ``since`` on, newest first."""
        rows = await self._all(
            "SELECT * FROM flow_sends WHERE customer_id = ? AND outcome = 'sent'"
            " AND send_at >= ? ORDER BY send_at DESC, seq DESC",
            (customer_id, to_db(since)),
        )
        return [fr.send(r) for r in rows]

    async def record_answer(
        self, enrolment_id: str, step: str, answer: str, inbound_id: str, at: datetime
    ) -> bool:
        """Store a survey answer; False when the step has one already (the first counts)."""
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT OR IGNORE INTO survey_answers (enrolment_id, step, answer, inbound_id,"
                " at) VALUES (?,?,?,?,?)",
                (enrolment_id, step, answer, inbound_id, to_db(at)),
            )
            return cur.rowcount == 1

    async def answer(self, enrolment_id: str, step: str) -> str | None:
        """The recorded answer to a survey step, if any."""
        row = await self._one(
            "SELECT answer FROM survey_answers WHERE enrolment_id = ? AND step = ?",
            (enrolment_id, step),
        )
        return None if row is None else str(row["answer"])

    async def inbound_text(self, inbound_id: str) -> tuple[str, str] | None:
        """(sender, text) of a complete inbound message, or None."""
        row = await self._one(
            "SELECT sender, text FROM inbound_messages WHERE id = ? AND status != 'partial'",
            (inbound_id,),
        )
        return None if row is None else (str(row["sender"]), str(row["text"]))

    async def preferences(self, customer_id: str) -> tuple[str, str] | None:
        """(kinds, frequency) as stored, or None when the customer never chose."""
        row = await self._one(
            "SELECT kinds, frequency FROM customer_preferences WHERE customer_id = ?",
            (customer_id,),
        )
        return None if row is None else (str(row["kinds"]), str(row["frequency"]))

    async def set_preferences(
        self, customer_id: str, kinds: str, frequency: str, *, source: str, at: datetime
    ) -> None:
        """Store a choice and its timeline entry in one commit."""
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO customer_preferences (customer_id, kinds, frequency, source,"
                " updated_at) VALUES (?,?,?,?,?) ON CONFLICT (customer_id) DO UPDATE SET"
                " kinds = excluded.kinds, frequency = excluded.frequency,"
                " source = excluded.source, updated_at = excluded.updated_at",
                (customer_id, kinds, frequency, source, to_db(at)),
            )
            detail = {"kinds": kinds.split(","), "frequency": frequency, "source": source}
            await db.execute(
                "INSERT INTO customer_timeline (customer_id, at, what, reason, detail)"
                " VALUES (?,?,?,?,?)",
                (customer_id, to_db(at), "preferences", source, json.dumps(detail)),
            )

    async def add_timeline(self, entry: TimelineEntry) -> None:
        """Record one decision."""
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO customer_timeline (customer_id, at, what, reason, flow, step, kind,"
                " message_id, detail) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    entry.customer_id,
                    to_db(entry.at),
                    entry.what,
                    entry.reason,
                    entry.flow,
                    entry.step,
                    entry.kind,
                    entry.message_id,
                    json.dumps(entry.detail),
                ),
            )

    async def timeline(self, customer_id: str, limit: int) -> list[TimelineEntry]:
        """The customer's latest ``limit`` entries, oldest first."""
        rows = await self._all(
            "SELECT * FROM (SELECT * FROM customer_timeline WHERE customer_id = ?"
            " ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            (customer_id, limit),
        )
        return [fr.timeline(r) for r in rows]

    # -- metrics -------------------------------------------------------------------------

    async def enrolled_counts(self, since: datetime) -> dict[str, int]:
        """Enrolments started since ``since``, per flow."""
        rows = await self._all(
            "SELECT flow, COUNT(*) AS n FROM flow_enrolments WHERE started_at >= ? GROUP BY flow",
            (to_db(since),),
        )
        return {r["flow"]: int(r["n"]) for r in rows}

    async def step_counts(
        self, since: datetime, *, reply_window: float, conversion_window: float
    ) -> list[StepCounts]:
        """Per flow and send step: sends since ``since`` and what followed each."""
        # Windows are compared with julianday() of stored times: no SQL now() is involved.
        rows = await self._all(
            """
            SELECT s.flow, s.step, s.variant,
              SUM(s.outcome = 'sent') AS sent,
              SUM(s.outcome NOT IN ('sent', 'holdout')) AS skipped,
              SUM(s.outcome = 'holdout') AS holdout,
              SUM(m.status = 'delivered') AS delivered,
              SUM(m.status IN ('failed','expired')) AS failed,
              SUM(EXISTS (SELECT 1 FROM flow_links l JOIN flow_clicks c ON c.code = l.code
                  WHERE l.enrolment_id = s.enrolment_id AND l.step = s.step
                  AND c.counted = 1)) AS clicked,
              SUM(s.outcome = 'sent' AND EXISTS (SELECT 1 FROM inbound_messages i
                  WHERE i.sender = s.phone AND i.first_received_at > s.send_at
                  AND julianday(i.first_received_at) <= julianday(s.send_at) + ? / 86400.0))
                  AS replied,
              SUM(s.outcome = 'sent' AND EXISTS (SELECT 1 FROM optouts o
                  WHERE o.number = s.phone AND o.created_at > s.send_at
                  AND julianday(o.created_at) <= julianday(s.send_at) + ? / 86400.0)) AS opted_out,
              SUM(s.outcome IN ('sent', 'holdout') AND EXISTS (SELECT 1 FROM flow_orders o
                  JOIN flow_enrolments e ON e.id = s.enrolment_id
                  WHERE o.customer_id = s.customer_id
                  AND o.id IS NOT COALESCE(e.order_id, '')
                  AND o.placed_at > s.send_at
                  AND julianday(o.placed_at) <= julianday(s.send_at) + ? / 86400.0)) AS converted,
              GROUP_CONCAT(CASE WHEN s.outcome IN ('sent', 'holdout') THEN (
                  SELECT group_concat(o.total, ' ') FROM flow_orders o
                  JOIN flow_enrolments e ON e.id = s.enrolment_id
                  WHERE o.customer_id = s.customer_id
                  AND o.id IS NOT COALESCE(e.order_id, '')
                  AND o.placed_at > s.send_at
                  AND julianday(o.placed_at) <= julianday(s.send_at) + ? / 86400.0) END, ' ')
                  AS totals,
              SUM(EXISTS (SELECT 1 FROM survey_answers a
                  WHERE a.enrolment_id = s.enrolment_id AND a.step = s.step)) AS answered
            FROM flow_sends s LEFT JOIN messages m ON m.id = s.message_id
            WHERE s.at >= ?
            GROUP BY s.flow, s.step, s.variant ORDER BY s.flow, MIN(s.seq), s.variant
            """,
            (reply_window, reply_window, conversion_window, conversion_window, to_db(since)),
        )
        return [fr.step_counts(r) for r in rows]
