"""The flows' persistence on the PostgreSQL database the nodes share (see ``flows_base``).

The same tables and semantics as ``flows_sqlite`` (schema ``sql/postgres/0004_flows.sql``,
times as the same UTC text), on an asyncpg pool of its own. What several nodes need:

* **An event once.** :meth:`ingest` stores an event with a lease for this node: the same
  event posted to another node meanwhile is a duplicate. An event left unprocessed by a
  node that died is taken by the next recovery after its lease (or by that node's restart).
* **A due step on one node.** :meth:`claim_due` takes due enrolments in a short transaction
  (``FOR UPDATE SKIP LOCKED``), each stamped with this node, an epoch and a lease on the
  database clock; the step's :meth:`move` checks the epoch, so a node that lost the
  enrolment (stalled past its lease) changes nothing. A step's send is recorded once per
  enrolment and step (a unique key), and its message is submitted under an idempotency key.
* **Caps and gaps per number.** :meth:`number_lock` holds an advisory transaction lock on
  the number from a send's check to its record, on every node.
* **Erasure.** The opt-out kept under the number's hash is a row of the shared ``optouts``,
  which every node's submit, claim and send check.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import structlog

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
from gatewayd.store.postgres import (
    OPTOUT_CHANNEL,
    _count,
    default_node,
    lock_key,
    session_name,
)
from gatewayd.store.postgres_migrate import pg_migrate
from gatewayd.store.readers import open_pool
from gatewayd.store.timefmt import from_db, opt_from_db, opt_to_db, to_db

log = structlog.get_logger(__name__)

# How long a node keeps an event or a due step it took before another node may take it: far
# longer than a step takes (a few queries and one submit), so a live node keeps its own.
CLAIM_LEASE_SECONDS = 120.0
# The advisory lock kind of a send's caps-and-gap check. Not the core's "number" lock: the
# flows hold this one across the gateway's submit, which takes that one on another session.
NUMBER_LOCK = "flow_number"

_LEASE = "clock_timestamp() + make_interval(secs => $2)"
_FREE = "(lease_until IS NULL OR lease_until < clock_timestamp() OR claim_node = $1)"
_OPT_OUT = (
    "SELECT scope FROM optouts WHERE number = ANY($1::text[]) ORDER BY scope = 'all' DESC LIMIT 1"
)
_ENROLMENT_COLUMNS = (
    "id, flow, customer_id, order_id, event_id, status, step, due_at, waiting_for,"
    " started_at, updated_at, exit_reason"
)

_Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


class PostgresFlowStore:
    """Flows persistence on a PostgreSQL database shared by nodes (module docstring)."""

    def __init__(
        self,
        dsn: str,
        *,
        node: str | None = None,
        claim_lease_seconds: float = CLAIM_LEASE_SECONDS,
        pool_size: int = 4,
    ) -> None:
        self._dsn = dsn
        self.node = node or default_node()
        self.claim_lease_seconds = claim_lease_seconds
        self._pool_size = pool_size
        # Not the core's session name: its node-in-use check counts sessions by that name.
        self._app_name = f"{session_name(dsn, self.node)}/flows"[:63]
        self._pool: asyncpg.Pool | None = None
        # Enrolments this node claimed: id -> epoch (the fence of their next move).
        self._claims: dict[str, int] = {}

    async def open(self) -> None:
        """Connect and migrate (a no-op once the gateway's store has: one node at a time)."""
        pool = await open_pool(self._dsn, name=self._app_name, max_size=self._pool_size)
        try:
            async with pool.acquire() as conn:
                await pg_migrate(conn)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def _p(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("flows store is not open")
        return self._pool

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[_Conn]:
        async with self._p.acquire() as conn, conn.transaction():
            yield conn

    async def _one(self, sql: str, *params: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._p.fetchrow(sql, *params)
        return row

    async def _all(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        return list(await self._p.fetch(sql, *params))

    # -- events, customers, orders -------------------------------------------------------

    async def ingest(
        self,
        event: NewEvent,
        customer: CustomerRecord | None,
        order: OrderRecord | None,
    ) -> bool:
        """Store the event (and customer, order) in one commit, leased to this node; False
        if its id was seen and processed, or is being processed by another live node."""
        async with self._tx() as db:
            took = await db.fetchval(
                "INSERT INTO flow_events (event_id, type, customer_id, order_id, occurred_at,"
                " received_at, payload, claim_node, lease_until) VALUES ($3,$4,$5,$6,$7,$8,$9,"
                f"$1,{_LEASE}) ON CONFLICT (event_id) DO NOTHING RETURNING 1",
                self.node,
                self.claim_lease_seconds,
                event.event_id,
                event.type,
                event.customer_id,
                event.order_id,
                to_db(event.occurred_at),
                to_db(event.received_at),
                event.payload,
            )
            if took is None:
                # Seen: taken again only when unprocessed and no live node has it.
                took = await db.fetchval(
                    f"UPDATE flow_events SET claim_node = $1, lease_until = {_LEASE}"
                    f" WHERE event_id = $3 AND processed = 0 AND {_FREE} RETURNING 1",
                    self.node,
                    self.claim_lease_seconds,
                    event.event_id,
                )
                if took is None:
                    return False
            now = to_db(event.received_at)
            if customer is not None:
                await db.execute(
                    "INSERT INTO flow_customers AS c (id, phone, name, locale, timezone, country,"
                    " consent_transactional, consent_marketing, consent_source, consent_at,"
                    " updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"
                    " ON CONFLICT (id) DO UPDATE SET"
                    " phone = EXCLUDED.phone, name = COALESCE(EXCLUDED.name, c.name),"
                    " locale = COALESCE(EXCLUDED.locale, c.locale),"
                    " timezone = COALESCE(EXCLUDED.timezone, c.timezone),"
                    " country = EXCLUDED.country,"
                    " consent_transactional = EXCLUDED.consent_transactional,"
                    " consent_marketing = EXCLUDED.consent_marketing,"
                    " consent_source = EXCLUDED.consent_source,"
                    " consent_at = EXCLUDED.consent_at, updated_at = EXCLUDED.updated_at",
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
                )
            if order is not None:
                await db.execute(
                    "INSERT INTO flow_orders (id, customer_id, placed_at, status, total, currency,"
                    " payload, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (id)"
                    " DO UPDATE SET status = EXCLUDED.status, total = EXCLUDED.total,"
                    " currency = EXCLUDED.currency, payload = EXCLUDED.payload,"
                    " updated_at = EXCLUDED.updated_at",
                    order.id,
                    order.customer_id,
                    to_db(order.placed_at),
                    order.status,
                    str(order.total),
                    order.currency,
                    json.dumps(order.data, ensure_ascii=False),
                    now,
                )
            return True

    async def mark_processed(self, event_id: str) -> None:
        """Record that everything an event starts, ends or resumes is done."""
        await self._p.execute(
            "UPDATE flow_events SET processed = 1, claim_node = NULL, lease_until = NULL"
            " WHERE event_id = $1",
            event_id,
        )

    async def unprocessed_events(self) -> list[NewEvent]:
        """Events stored but not processed (a crash came in between) that no other live
        node is processing, oldest first: leased to this node, to be ingested again."""
        rows = await self._all(
            "WITH free AS (SELECT seq FROM flow_events WHERE processed = 0"
            f" AND {_FREE} ORDER BY seq FOR UPDATE SKIP LOCKED)"
            f" UPDATE flow_events f SET claim_node = $1, lease_until = {_LEASE}"
            " FROM free WHERE f.seq = free.seq RETURNING f.*",
            self.node,
            self.claim_lease_seconds,
        )
        return [fr.event(r) for r in sorted(rows, key=lambda r: int(r["seq"]))]

    async def event_data(self, event_id: str) -> dict[str, Any]:
        """The ``data`` object an event carried (empty when none)."""
        payload = await self._p.fetchval(
            "SELECT payload FROM flow_events WHERE event_id = $1", event_id
        )
        return fr.event_data(payload)

    async def seen_event(
        self, type: str, customer_id: str, order_id: str | None, since: datetime | None
    ) -> bool:
        """Whether an event of ``type`` for the customer (and order) was stored (since then)."""
        row = await self._one(
            "SELECT 1 FROM flow_events WHERE type = $1 AND customer_id = $2"
            " AND ($3::text IS NULL OR order_id = $3)"
            " AND ($4::text IS NULL OR received_at >= $4) LIMIT 1",
            type,
            customer_id,
            order_id,
            opt_to_db(since),
        )
        return row is not None

    async def customer(self, customer_id: str) -> CustomerRecord | None:
        """One customer, or None."""
        row = await self._one("SELECT * FROM flow_customers WHERE id = $1", customer_id)
        return None if row is None else fr.customer(row)

    async def order(self, order_id: str) -> OrderRecord | None:
        """One order, or None."""
        row = await self._one("SELECT * FROM flow_orders WHERE id = $1", order_id)
        return None if row is None else fr.order(row)

    async def orders_of(self, customer_id: str) -> list[OrderRecord]:
        """Every order of a customer, oldest first."""
        rows = await self._all(
            "SELECT * FROM flow_orders WHERE customer_id = $1 ORDER BY placed_at", customer_id
        )
        return [fr.order(r) for r in rows]

    # -- enrolments ----------------------------------------------------------------------

    async def enrol(self, items: list[EnrolmentRecord], now: datetime) -> list[str]:
        """Insert enrolments not already made from the same event; returns the new ids."""
        created: list[str] = []
        async with self._tx() as db:
            for e in items:
                got = await db.fetchval(
                    "INSERT INTO flow_enrolments (id, flow, customer_id, order_id, event_id,"
                    " status, step, due_at, waiting_for, started_at, updated_at)"
                    " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"
                    " ON CONFLICT DO NOTHING RETURNING id",
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
                )
                if got is not None:
                    created.append(e.id)
        return created

    async def enrolment(self, enrolment_id: str) -> EnrolmentRecord | None:
        """One enrolment, or None."""
        row = await self._one("SELECT * FROM flow_enrolments WHERE id = $1", enrolment_id)
        return None if row is None else fr.enrolment(row)

    async def open_enrolments(self, customer_id: str) -> list[EnrolmentRecord]:
        """A customer's enrolments still running (active or waiting), oldest first."""
        rows = await self._all(
            "SELECT * FROM flow_enrolments WHERE customer_id = $1"
            " AND status IN ('active','waiting') ORDER BY started_at, seq",
            customer_id,
        )
        return [fr.enrolment(r) for r in rows]

    async def claim_due(self, now: datetime, limit: int) -> list[EnrolmentRecord]:
        """Due enrolments no live node holds, earliest first, now leased to this node under
        a fresh epoch (their next :meth:`move` checks it)."""
        rows = await self._all(
            "WITH due AS (SELECT seq FROM flow_enrolments"
            " WHERE status IN ('active','waiting') AND due_at IS NOT NULL AND due_at <= $3"
            " AND (lease_until IS NULL OR lease_until < clock_timestamp())"
            " ORDER BY due_at, seq LIMIT $4 FOR UPDATE SKIP LOCKED)"
            " UPDATE flow_enrolments e SET claim_node = $1,"
            f" claim_epoch = nextval('claim_epochs'), lease_until = {_LEASE}"
            " FROM due WHERE e.seq = due.seq RETURNING e.*",
            self.node,
            self.claim_lease_seconds,
            to_db(now),
            limit,
        )
        rows.sort(key=lambda r: (r["due_at"], int(r["seq"])))
        for r in rows:
            self._claims[r["id"]] = int(r["claim_epoch"])
        return [fr.enrolment(r) for r in rows]

    async def next_due(self) -> datetime | None:
        """The earliest due time of any running enrolment no live node holds (one held
        elsewhere is that node's to move; its new due time is seen at the next look)."""
        t = await self._p.fetchval(
            "SELECT MIN(due_at) FROM flow_enrolments WHERE status IN ('active','waiting')"
            " AND (lease_until IS NULL OR lease_until < clock_timestamp())"
        )
        return opt_from_db(t)

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
        """Set where an enrolment is, and release its claim.

        A claimed enrolment moves only while this node's claim holds (else another node
        took it over and this move is dropped). An unclaimed move (an event ending or
        resuming it) wins over another node's claim, but never reopens an ended enrolment.
        """
        epoch = self._claims.pop(enrolment_id, None)
        fence = "claim_epoch = $8" if epoch is not None else "status IN ('active','waiting')"
        params: list[Any] = [
            enrolment_id,
            status.value,
            step,
            opt_to_db(due_at),
            waiting_for,
            exit_reason,
            to_db(now),
        ]
        if epoch is not None:
            params.append(epoch)
        done = await self._p.execute(
            "UPDATE flow_enrolments SET status = $2, step = $3, due_at = $4, waiting_for = $5,"
            " exit_reason = $6, updated_at = $7, claim_node = NULL, claim_epoch = NULL,"
            f" lease_until = NULL WHERE id = $1 AND {fence}",
            *params,
        )
        if epoch is not None and not _count(done):
            log.warning("flows.claim_lost", enrolment=enrolment_id, node=self.node)

    # -- links and clicks ----------------------------------------------------------------

    async def add_links(
        self, enrolment_id: str, step: str, links: list[tuple[str, str]], now: datetime
    ) -> None:
        """Store ``(code, url)`` pairs made for one step of one enrolment."""
        async with self._tx() as db:
            await db.executemany(
                "INSERT INTO flow_links (code, url, enrolment_id, step, created_at)"
                " VALUES ($1,$2,$3,$4,$5)",
                [(code, url, enrolment_id, step, to_db(now)) for code, url in links],
            )

    async def links_of(self, enrolment_id: str, step: str) -> dict[str, str]:
        """The links already made for a step: url -> code (a retried step reuses them)."""
        rows = await self._all(
            "SELECT code, url FROM flow_links WHERE enrolment_id = $1 AND step = $2",
            enrolment_id,
            step,
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
            " WHERE l.code = $1",
            code,
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
        seq = await self._p.fetchval(
            "INSERT INTO flow_clicks (code, at, method, user_agent, counted, reason)"
            " VALUES ($1,$2,$3,$4,$5,$6) RETURNING seq",
            code,
            to_db(at),
            method,
            (user_agent or "")[:500],
            int(counted),
            reason,
        )
        return int(seq)

    async def clicked(self, enrolment_id: str, step: str) -> bool:
        """Whether a counted click hit a link of that step."""
        row = await self._one(
            "SELECT 1 FROM flow_clicks c JOIN flow_links l ON l.code = c.code"
            " WHERE l.enrolment_id = $1 AND l.step = $2 AND c.counted = 1 LIMIT 1",
            enrolment_id,
            step,
        )
        return row is not None

    # -- sends ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def number_lock(self, phone: str) -> AsyncIterator[None]:
        """Hold the number's flows lock (every node's) in a transaction until the block ends."""
        async with self._tx() as db:
            await db.execute("SELECT pg_advisory_xact_lock($1)", lock_key(NUMBER_LOCK, phone))
            yield

    async def record_send(self, send: NewSend) -> None:
        """Record what a send step did (once per enrolment and step, whichever node)."""
        await self._p.execute(
            "INSERT INTO flow_sends (enrolment_id, flow, step, customer_id, phone, category,"
            " outcome, message_id, at, send_at, variant)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"
            " ON CONFLICT (enrolment_id, step) DO NOTHING",
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
        )

    async def sent_step(self, enrolment_id: str, step: str) -> NewSend | None:
        """What a send step of an enrolment did, if it ran."""
        row = await self._one(
            "SELECT * FROM flow_sends WHERE enrolment_id = $1 AND step = $2", enrolment_id, step
        )
        return None if row is None else fr.send(row)

    async def send_times(
        self, customer_id: str, since: datetime, category: str | None
    ) -> list[datetime]:
        """When messages to a customer go (``send_at``) from ``since`` on, all or one category."""
        rows = await self._all(
            "SELECT send_at FROM flow_sends WHERE customer_id = $1 AND outcome = 'sent'"
            " AND send_at >= $2 AND ($3::text IS NULL OR category = $3) ORDER BY send_at",
            customer_id,
            to_db(since),
            category,
        )
        return [from_db(r["send_at"]) for r in rows]

    async def replied(self, phone: str, since: datetime) -> bool:
        """Whether an SMS from ``phone`` arrived after ``since``."""
        row = await self._one(
            "SELECT 1 FROM inbound_messages WHERE sender = $1 AND first_received_at > $2 LIMIT 1",
            phone,
            to_db(since),
        )
        return row is not None

    async def optout_scope(self, phone: str) -> str | None:
        """The scope of ``phone``'s opt-out entry (kept as its hash once erased), if any."""
        scope = await self._p.fetchval(_OPT_OUT, [phone, erased(phone)])
        return None if scope is None else str(scope)

    # -- privacy: export, erase, retention -------------------------------------------------

    async def export_customer(self, customer_id: str) -> dict[str, Any] | None:
        """Everything stored about a customer (None when unknown), as JSON-ready rows."""
        customer = await self._one("SELECT * FROM flow_customers WHERE id = $1", customer_id)
        if customer is None:
            return None
        phone = customer["phone"]

        async def rows(sql: str, *params: Any) -> list[dict[str, Any]]:
            return [dict(r) for r in await self._all(sql, *params)]

        prefs = await rows("SELECT * FROM customer_preferences WHERE customer_id = $1", customer_id)
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
                "SELECT number, scope, source, created_at FROM optouts"
                " WHERE number = ANY($1::text[])",
                [phone, erased(phone)],
            ),
            "orders": await rows(
                "SELECT * FROM flow_orders WHERE customer_id = $1 ORDER BY placed_at", customer_id
            ),
            "events": await rows(
                "SELECT event_id, type, order_id, occurred_at, received_at, payload"
                " FROM flow_events WHERE customer_id = $1 ORDER BY occurred_at",
                customer_id,
            ),
            # The SQLite columns: the claim columns are this node's business, not the
            # customer's (and their timestamps are not JSON).
            "enrolments": await rows(
                f"SELECT {_ENROLMENT_COLUMNS} FROM flow_enrolments WHERE customer_id = $1"
                " ORDER BY started_at, seq",
                customer_id,
            ),
            "messages": await rows(
                "SELECT id, recipient, text, category, status, send_at, created_at, updated_at,"
                " error_code, metadata FROM messages WHERE recipient = $1 ORDER BY seq",
                phone,
            ),
            "inbound": await rows(
                "SELECT id, sender, text, status, first_received_at FROM inbound_messages"
                " WHERE sender = $1 ORDER BY seq",
                phone,
            ),
            "clicks": await rows(
                "SELECT c.code, l.url, l.step, c.at, c.method, c.user_agent, c.counted"
                " FROM flow_clicks c JOIN flow_links l ON l.code = c.code"
                " JOIN flow_enrolments e ON e.id = l.enrolment_id"
                " WHERE e.customer_id = $1 ORDER BY c.at",
                customer_id,
            ),
            "survey_answers": await rows(
                "SELECT a.* FROM survey_answers a JOIN flow_enrolments e"
                " ON e.id = a.enrolment_id WHERE e.customer_id = $1",
                customer_id,
            ),
            "timeline": await rows(
                "SELECT at, what, reason, flow, step, kind, message_id, detail"
                " FROM customer_timeline WHERE customer_id = $1 ORDER BY seq",
                customer_id,
            ),
        }

    async def secret(self, name: str) -> bytes:
        """The install's secret called ``name``, made (32 random bytes) on first use; every
        node gets the one the first of them stored."""
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO customer_secrets (name, value) VALUES ($1, $2)"
                " ON CONFLICT (name) DO NOTHING",
                name,
                secrets.token_hex(32),
            )
            value = await db.fetchval("SELECT value FROM customer_secrets WHERE name = $1", name)
        return bytes.fromhex(str(value))

    async def queued_to(self, phone: str) -> list[str]:
        """Ids of the messages still queued to ``phone``."""
        rows = await self._all(
            "SELECT id FROM messages WHERE recipient = $1 AND status = 'queued'", phone
        )
        return [str(r["id"]) for r in rows]

    async def erase_customer(self, customer_id: str, at: datetime) -> bool:
        """Erase a customer's personal data in one commit (False when unknown).

        As on SQLite: the number becomes its one-way hash, kept only in the opt-out list;
        texts, PDUs, payloads, the name and the preferences go. The transaction holds the
        core's lock on the number, so no node's submit or opt-out change crosses it, and
        other nodes' opt-out caches learn the hashed entry. PostgreSQL has no
        ``secure_delete``: old row versions stay on disk until vacuum reuses their space.
        """
        phone = await self._p.fetchval(
            "SELECT phone FROM flow_customers WHERE id = $1", customer_id
        )
        if phone is None:
            return False
        phone = str(phone)
        gone = erased(phone)
        async with self._tx() as db:
            await db.execute("SELECT pg_advisory_xact_lock($1)", lock_key("number", phone))
            scope = await db.fetchval("SELECT scope FROM optouts WHERE number = $1", phone)
            if scope is not None:
                await db.execute("DELETE FROM optouts WHERE number = $1", gone)
                await db.execute(
                    "UPDATE optouts SET number = $1, source = 'erased' WHERE number = $2",
                    gone,
                    phone,
                )
                for number, now_scope in ((gone, scope), (phone, None)):
                    change = {"node": self.node, "number": number, "scope": now_scope}
                    await db.execute("SELECT pg_notify($1, $2)", OPTOUT_CHANNEL, json.dumps(change))
            await db.execute(
                "UPDATE parts SET pdu = '' WHERE message_id IN"
                " (SELECT id FROM messages WHERE recipient = $1)",
                phone,
            )
            await db.execute(
                "UPDATE history SET detail = NULL WHERE message_id IN"
                " (SELECT id FROM messages WHERE recipient = $1)",
                phone,
            )
            await db.execute(
                "UPDATE messages SET text = '', recipient = $1, recipient_digits = '',"
                " callback_url = NULL WHERE recipient = $2",
                gone,
                phone,
            )
            await db.execute("DELETE FROM sticky_recipients WHERE recipient = $1", phone)
            await db.execute(
                "UPDATE unmatched_reports SET recipient = $1 WHERE recipient = $2", gone, phone
            )
            await db.execute(
                "UPDATE inbound_parts SET text = '', sender = $1 WHERE sender = $2", gone, phone
            )
            await db.execute(
                "UPDATE inbound_messages SET text = '', sender = $1 WHERE sender = $2", gone, phone
            )
            # A webhook carries the number (and maybe the text): erasure wins over delivery.
            await db.execute("DELETE FROM webhook_outbox WHERE strpos(payload, $1) > 0", phone)
            await db.execute(
                "UPDATE flow_customers SET phone = $1, name = NULL, timezone = NULL,"
                " country = NULL, consent_source = NULL WHERE id = $2",
                gone,
                customer_id,
            )
            await db.execute(
                "UPDATE flow_events SET payload = '{}', processed = 1, claim_node = NULL,"
                " lease_until = NULL WHERE customer_id = $1",
                customer_id,
            )
            await db.execute(
                "UPDATE flow_orders SET payload = '{}' WHERE customer_id = $1", customer_id
            )
            await db.execute(
                "UPDATE flow_sends SET phone = $1 WHERE customer_id = $2", gone, customer_id
            )
            await db.execute(
                "UPDATE flow_enrolments SET status = 'exited', exit_reason = 'erased',"
                " due_at = NULL, waiting_for = NULL, updated_at = $1, claim_node = NULL,"
                " claim_epoch = NULL, lease_until = NULL"
                " WHERE customer_id = $2 AND status IN ('active', 'waiting')",
                to_db(at),
                customer_id,
            )
            await db.execute("DELETE FROM customer_preferences WHERE customer_id = $1", customer_id)
            await db.execute(
                "INSERT INTO customer_timeline (customer_id, at, what, reason)"
                " VALUES ($1,$2,'erased','request')",
                customer_id,
                to_db(at),
            )
        return True

    async def purge_texts(self, before: datetime) -> tuple[int, int]:
        """Retention: empty the texts (and PDUs) of final messages and the bodies of inbound
        messages older than ``before``; returns (messages, inbound) purged."""
        cut = to_db(before)
        async with self._tx() as db:
            messages = _count(
                await db.execute(
                    "UPDATE messages SET text = '' WHERE created_at < $1 AND text <> ''"
                    " AND status NOT IN ('queued', 'sending')",
                    cut,
                )
            )
            await db.execute(
                "UPDATE parts SET pdu = '' WHERE pdu <> '' AND message_id IN (SELECT id FROM"
                " messages WHERE created_at < $1 AND status NOT IN ('queued', 'sending'))",
                cut,
            )
            inbound = _count(
                await db.execute(
                    "UPDATE inbound_messages SET text = '' WHERE first_received_at < $1"
                    " AND text <> '' AND status <> 'partial'",
                    cut,
                )
            )
            await db.execute(
                "UPDATE inbound_parts SET text = '' WHERE received_at < $1 AND text <> ''"
                " AND inbound_id IN (SELECT id FROM inbound_messages WHERE status <> 'partial')",
                cut,
            )
        return messages, inbound

    # -- customers: preferences and timeline ---------------------------------------------

    async def customer_by_phone(self, phone: str) -> CustomerRecord | None:
        """The customer last seen with ``phone`` (E.164), or None."""
        row = await self._one(
            "SELECT * FROM flow_customers WHERE phone = $1 ORDER BY updated_at DESC LIMIT 1",
            phone,
        )
        return None if row is None else fr.customer(row)

    async def latest_occurred(self, type: str, order_id: str) -> datetime | None:
        """When the latest event of ``type`` for the order happened (its ``occurred_at``)."""
        t = await self._p.fetchval(
            "SELECT MAX(occurred_at) FROM flow_events WHERE type = $1 AND order_id = $2",
            type,
            order_id,
        )
        return opt_from_db(t)

    async def queued_sends(self, flows: Sequence[str], order_id: str) -> list[NewSend]:
        """Sends of ``flows`` for the order whose message is still queued."""
        rows = await self._all(
            "SELECT s.* FROM flow_sends s JOIN flow_enrolments e ON e.id = s.enrolment_id"
            " JOIN messages m ON m.id = s.message_id"
            " WHERE s.flow = ANY($1::text[]) AND e.order_id = $2 AND m.status = 'queued'",
            list(flows),
            order_id,
        )
        return [fr.send(r) for r in rows]

    async def recent_sends(self, customer_id: str, since: datetime) -> list[NewSend]:
        """The customer's sent flow messages from ``since`` on, newest first."""
        rows = await self._all(
            "SELECT * FROM flow_sends WHERE customer_id = $1 AND outcome = 'sent'"
            " AND send_at >= $2 ORDER BY send_at DESC, seq DESC",
            customer_id,
            to_db(since),
        )
        return [fr.send(r) for r in rows]

    async def record_answer(
        self, enrolment_id: str, step: str, answer: str, inbound_id: str, at: datetime
    ) -> bool:
        """Store a survey answer; False when the step has one already (the first counts)."""
        got = await self._p.fetchval(
            "INSERT INTO survey_answers (enrolment_id, step, answer, inbound_id, at)"
            " VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING RETURNING 1",
            enrolment_id,
            step,
            answer,
            inbound_id,
            to_db(at),
        )
        return got is not None

    async def answer(self, enrolment_id: str, step: str) -> str | None:
        """The recorded answer to a survey step, if any."""
        value = await self._p.fetchval(
            "SELECT answer FROM survey_answers WHERE enrolment_id = $1 AND step = $2",
            enrolment_id,
            step,
        )
        return None if value is None else str(value)

    async def inbound_text(self, inbound_id: str) -> tuple[str, str] | None:
        """(sender, text) of a complete inbound message, or None."""
        row = await self._one(
            "SELECT sender, text FROM inbound_messages WHERE id = $1 AND status <> 'partial'",
            inbound_id,
        )
        return None if row is None else (str(row["sender"]), str(row["text"]))

    async def preferences(self, customer_id: str) -> tuple[str, str] | None:
        """(kinds, frequency) as stored, or None when the customer never chose."""
        row = await self._one(
            "SELECT kinds, frequency FROM customer_preferences WHERE customer_id = $1",
            customer_id,
        )
        return None if row is None else (str(row["kinds"]), str(row["frequency"]))

    async def set_preferences(
        self, customer_id: str, kinds: str, frequency: str, *, source: str, at: datetime
    ) -> None:
        """Store a choice and its timeline entry in one commit."""
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO customer_preferences (customer_id, kinds, frequency, source,"
                " updated_at) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (customer_id) DO UPDATE SET"
                " kinds = EXCLUDED.kinds, frequency = EXCLUDED.frequency,"
                " source = EXCLUDED.source, updated_at = EXCLUDED.updated_at",
                customer_id,
                kinds,
                frequency,
                source,
                to_db(at),
            )
            detail = {"kinds": kinds.split(","), "frequency": frequency, "source": source}
            await db.execute(
                "INSERT INTO customer_timeline (customer_id, at, what, reason, detail)"
                " VALUES ($1,$2,'preferences',$3,$4)",
                customer_id,
                to_db(at),
                source,
                json.dumps(detail),
            )

    async def add_timeline(self, entry: TimelineEntry) -> None:
        """Record one decision."""
        await self._p.execute(
            "INSERT INTO customer_timeline (customer_id, at, what, reason, flow, step, kind,"
            " message_id, detail) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
            entry.customer_id,
            to_db(entry.at),
            entry.what,
            entry.reason,
            entry.flow,
            entry.step,
            entry.kind,
            entry.message_id,
            json.dumps(entry.detail),
        )

    async def timeline(self, customer_id: str, limit: int) -> list[TimelineEntry]:
        """The customer's latest ``limit`` entries, oldest first."""
        rows = await self._all(
            "SELECT * FROM (SELECT * FROM customer_timeline WHERE customer_id = $1"
            " ORDER BY seq DESC LIMIT $2) t ORDER BY seq",
            customer_id,
            limit,
        )
        return [fr.timeline(r) for r in rows]

    # -- metrics -------------------------------------------------------------------------

    async def enrolled_counts(self, since: datetime) -> dict[str, int]:
        """Enrolments started since ``since``, per flow."""
        rows = await self._all(
            "SELECT flow, COUNT(*) AS n FROM flow_enrolments WHERE started_at >= $1 GROUP BY flow",
            to_db(since),
        )
        return {r["flow"]: int(r["n"]) for r in rows}

    async def step_counts(
        self, since: datetime, *, reply_window: float, conversion_window: float
    ) -> list[StepCounts]:
        """Per flow and send step: sends since ``since`` and what followed each."""
        # Windows are added to stored times ($1 reply, $2 conversion, in seconds): no SQL
        # now() is involved, as on SQLite. Names sort bytewise (COLLATE "C"), as on SQLite.
        rows = await self._all(
            """
            SELECT s.flow, s.step, s.variant,
              COUNT(*) FILTER (WHERE s.outcome = 'sent') AS sent,
              COUNT(*) FILTER (WHERE s.outcome NOT IN ('sent', 'holdout')) AS skipped,
              COUNT(*) FILTER (WHERE s.outcome = 'holdout') AS holdout,
              COUNT(*) FILTER (WHERE m.status = 'delivered') AS delivered,
              COUNT(*) FILTER (WHERE m.status IN ('failed', 'expired')) AS failed,
              COUNT(*) FILTER (WHERE EXISTS (SELECT 1 FROM flow_links l
                  JOIN flow_clicks c ON c.code = l.code
                  WHERE l.enrolment_id = s.enrolment_id AND l.step = s.step
                  AND c.counted = 1)) AS clicked,
              COUNT(*) FILTER (WHERE s.outcome = 'sent' AND EXISTS (SELECT 1
                  FROM inbound_messages i
                  WHERE i.sender = s.phone AND i.first_received_at > s.send_at
                  AND i.first_received_at::timestamptz
                      <= s.send_at::timestamptz + make_interval(secs => $1))) AS replied,
              COUNT(*) FILTER (WHERE s.outcome = 'sent' AND EXISTS (SELECT 1 FROM optouts o
                  WHERE o.number = s.phone AND o.created_at > s.send_at
                  AND o.created_at::timestamptz
                      <= s.send_at::timestamptz + make_interval(secs => $1))) AS opted_out,
              COUNT(*) FILTER (WHERE s.outcome IN ('sent', 'holdout') AND EXISTS (SELECT 1
                  FROM flow_orders o JOIN flow_enrolments e ON e.id = s.enrolment_id
                  WHERE o.customer_id = s.customer_id
                  AND o.id IS DISTINCT FROM COALESCE(e.order_id, '')
                  AND o.placed_at > s.send_at
                  AND o.placed_at::timestamptz
                      <= s.send_at::timestamptz + make_interval(secs => $2))) AS converted,
              string_agg(CASE WHEN s.outcome IN ('sent', 'holdout') THEN (
                  SELECT string_agg(o.total, ' ') FROM flow_orders o
                  JOIN flow_enrolments e ON e.id = s.enrolment_id
                  WHERE o.customer_id = s.customer_id
                  AND o.id IS DISTINCT FROM COALESCE(e.order_id, '')
                  AND o.placed_at > s.send_at
                  AND o.placed_at::timestamptz
                      <= s.send_at::timestamptz + make_interval(secs => $2)) END, ' ')
                  AS totals,
              COUNT(*) FILTER (WHERE EXISTS (SELECT 1 FROM survey_answers a
                  WHERE a.enrolment_id = s.enrolment_id AND a.step = s.step)) AS answered
            FROM flow_sends s LEFT JOIN messages m ON m.id = s.message_id
            WHERE s.at >= $3
            GROUP BY s.flow, s.step, s.variant
            ORDER BY s.flow COLLATE "C", MIN(s.seq), s.variant COLLATE "C" NULLS FIRST
            """,
            reply_window,
            conversion_window,
            to_db(since),
        )
        return [fr.step_counts(r) for r in rows]
