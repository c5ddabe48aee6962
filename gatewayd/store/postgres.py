"""The PostgreSQL store (many hosts): the same :class:`~gatewayd.store.base.Store`, asyncpg, a pool.

Several gatewayd nodes share one database (docs/multinode.md). What differs from SQLite:

* **Claims.** :meth:`claim` takes a queued message in a short transaction
  (``FOR UPDATE SKIP LOCKED``) and stamps it with this node, a fresh epoch and a lease on the
  database clock; no lock is held while the modem sends. Every later write about the message
  (part sending/sent/unconfirmed, requeue, fail, cancel while sending, whole resend) checks
  node and epoch and raises :class:`ClaimLost` when another node took it over. The lease is
  checked and extended in :meth:`part_sending`, just before ``AT+CMGS``: a node that lost
  the database or its lease sends nothing more.
* **Take-over.** A claim whose lease ran out is taken over by whichever node looks next:
  its parts left ``sending`` follow the unknown-outcome rule exactly like after a crash.
* **SIM ownership.** ``sim_owners`` binds each ICCID to one live node; a node that finds
  an ICCID owned by another node does not send with it.
* **Opt-outs win.** Submit, claim, ``part_sending`` and the opt-out insert serialise on the
  number (``pg_advisory_xact_lock``), so a committed opt-out is seen by every later claim.
* **Wake-ups.** A commit that queues work sends ``NOTIFY``; every node's listener wakes its
  workers. A hint only: idle workers also look at least every ``poll_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog

from gatewayd.store import events
from gatewayd.store import rows as rows_
from gatewayd.store.errors import (
    ClaimLost,
    IdempotencyKeyReused,
    RecipientOptedOut,
    StoreError,
    WrongState,
)
from gatewayd.store.events import WEBHOOK_LEASE_SECONDS, inbound_data, message_data, optout_data
from gatewayd.store.ids import new_id
from gatewayd.store.numbers import digits, digits_match, erased
from gatewayd.store.postgres_migrate import pg_migrate
from gatewayd.store.readers import open_pool
from gatewayd.store.records import (
    GONE_OUT,
    PENDING_STATUSES,
    Category,
    HistoryRecord,
    InboundRecord,
    InboundStatus,
    Inserted,
    MessageRecord,
    MessageStatus,
    NewInboundPart,
    NewMessage,
    NextWork,
    OptOutRecord,
    OptOutResult,
    OptOutScope,
    Page,
    PartRecord,
    PartStatus,
    ReportIn,
    ReportMatch,
    RouteQuery,
    WebhookDelivery,
    WebhookFailure,
    parse_cursor,
)
from gatewayd.store.timefmt import from_db, opt_from_db, opt_to_db, to_db

log = structlog.get_logger(__name__)

COMMAND_TIMEOUT_SECONDS = 30.0
# A claim's lease, renewed at each part: longer than any modem takes to answer +CMGS
# (Quectel EC25: 120 s), so a live node's slow send is never taken over.
CLAIM_LEASE_SECONDS = 150.0
# The database clock is re-read at every heartbeat; smaller changes than this are the
# round trip's noise, not a clock that moved.
CLOCK_STEP_SECONDS = 0.25
# Rows of the queue depth counter (sql/postgres/0001_initial.sql); the depth is their sum.
DEPTH_STRIPES = 16
_DEPTH = "SELECT SUM(value) FROM queue_depth"
# The channel every node listens on; the payload is empty (a hint to look at the queue).
CHANNEL = "gatewayd_queued"
# Opt-out list changes: {"node", "number", "scope"} (scope null: removed).
OPTOUT_CHANNEL = "gatewayd_optout"

# The scope covering a number: its own entry, or its erased customer's (the hash); the
# wider scope first when both exist.
_OPTED_OUT = (
    "SELECT scope FROM optouts WHERE number = ANY($1::text[]) ORDER BY scope = 'all' DESC LIMIT 1"
)

_GONE_OUT_SQL = ",".join(f"'{s.value}'" for s in sorted(GONE_OUT))

_CANDIDATES = """
SELECT m.*,
    CASE WHEN m.identity IS NOT NULL AND m.identity <> $1 AND m.bound_until IS NOT NULL
              AND m.bound_until > m.next_attempt_at
         THEN m.bound_until ELSE m.next_attempt_at END AS due
FROM messages m
LEFT JOIN sticky_recipients s ON s.recipient = m.recipient
WHERE m.status = 'queued'
  AND (m.expires_at IS NULL OR m.expires_at > $2)
  AND (m.modem IS NULL OR m.modem = $3)
  AND (m.pool IS NULL OR m.pool = $4)
  AND ($5::integer IS NULL OR m.segments <= $5::integer)
  AND (m.identity IS NULL OR m.identity = $1 OR m.identity <> ALL($6::text[]))
  AND (NOT $7::boolean OR m.modem IS NOT NULL OR s.identity IS NULL OR s.identity = $1
       OR s.identity = m.avoid_identity OR s.identity <> ALL($6::text[]))
  AND (m.avoid_identity IS NULL OR m.avoid_identity <> $1 OR m.modem IS NOT NULL
       OR (m.pool IS NULL AND $8::boolean) OR (m.pool IS NOT NULL AND $9::boolean))
"""


# Take a SIM free or whose owner's heartbeat ran out, or renew our own; no row: not ours.
_OWN_SIM = """
INSERT INTO sim_owners (identity, node, epoch, heartbeat)
VALUES ($1, $2, nextval('claim_epochs'), clock_timestamp())
ON CONFLICT (identity) DO UPDATE SET node = EXCLUDED.node, heartbeat = EXCLUDED.heartbeat,
    epoch = CASE WHEN sim_owners.node = EXCLUDED.node THEN sim_owners.epoch
                 ELSE EXCLUDED.epoch END
WHERE sim_owners.node = EXCLUDED.node
   OR sim_owners.heartbeat < clock_timestamp() - make_interval(secs => $3)
RETURNING node, epoch
"""

_Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


class NodeInUse(StoreError):
    """Another live process runs under this node name."""


def default_node() -> str:
    """A node name when none is given: the host name (one node per host)."""
    return socket.gethostname()


def session_name(dsn: str, node: str) -> str:
    """The ``application_name`` of a node's sessions (with the schema, if the DSN names one)."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(dsn).query)
    schema = query.get("search_path", [""])[0]
    return f"gatewayd/{schema}/{node}"[:63] if schema else f"gatewayd/{node}"[:63]


def lock_key(kind: str, value: str) -> int:
    """A signed 64-bit advisory lock key for ``kind:value`` (stable across nodes)."""
    raw = hashlib.blake2b(f"{kind}:{value}".encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big", signed=True)


def _count(status: str) -> int:
    """The row count of an asyncpg command status (``UPDATE 3``)."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


@dataclass
class _Tx:
    """What one transaction changed that outlives it: queue depth, who to wake."""

    db: _Conn
    depth_delta: int = 0
    queued: bool = False
    outbox: int = 0


class PostgresStore:
    """The gateway's persistence on a PostgreSQL database shared by nodes (module docstring)."""

    def __init__(
        self,
        dsn: str,
        *,
        webhook_url: str | None = None,
        node: str | None = None,
        lease_seconds: float = 30.0,
        claim_lease_seconds: float = CLAIM_LEASE_SECONDS,
        poll_seconds: float = 1.0,
        pool_size: int = 10,
    ) -> None:
        self._dsn = dsn
        self._webhook_url = webhook_url
        self.node = node or default_node()
        # Liveness of nodes and SIM owners (heartbeats every third of it).
        self.lease_seconds = lease_seconds
        self.claim_lease_seconds = claim_lease_seconds
        self.poll_seconds = poll_seconds
        self._pool_size = pool_size
        self._app_name = session_name(dsn, self.node)
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._depth = 0
        self._listeners: list[Callable[[], None]] = []
        self._outbox_listeners: list[Callable[[], None]] = []
        self._optout_listeners: list[Callable[[str, OptOutScope | None], None]] = []
        self._clock_listeners: list[Callable[[float], None]] = []
        # How far the database's clock is ahead of this host's (seconds).
        self.clock_offset = 0.0
        # Other nodes' modems (name -> pool), read at open and at every heartbeat.
        self._elsewhere: dict[str, str] = {}
        # Claims this node holds: message id -> epoch (the fence of every later write).
        self._claims: dict[str, int] = {}
        # SIMs this node owns, with the monotonic time their ownership was last renewed.
        self._sims: dict[str, float] = {}
        # The ownership epoch of each SIM as this node last held it (a new one: taken anew).
        self._sim_epochs: dict[str, int] = {}
        self._refused_sims: set[str] = set()
        self._last_takeover = 0.0
        # The unknown-outcome rule, as recover() was told (take-overs apply it too).
        self._resend: frozenset[Category] = frozenset()
        self._failover = timedelta(0)
        self._send_within = timedelta(0)

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, migrate (one node at a time), register the node, listen for wake-ups.

        Raises ``NodeInUse`` while another process is connected under this node's name.
        """
        # Sessions carry the node's name: a crashed process has none left, a live one does,
        # whatever its heartbeat says (set at connect: a pool's reset keeps it).
        pool = await open_pool(self._dsn, name=self._app_name, max_size=self._pool_size)
        try:
            async with pool.acquire() as conn:
                await pg_migrate(conn)
                await self._register(conn)
                self._depth = int(await conn.fetchval(_DEPTH))
                await self._read_clock(conn)
                await self._read_modems(conn)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        try:
            listener = await asyncpg.connect(
                self._dsn, server_settings={"application_name": f"{self._app_name}/listen"[:63]}
            )
            await listener.add_listener(CHANNEL, self._notified)
            await listener.add_listener(OPTOUT_CHANNEL, self._optout_notified)
            self._listener = listener
        except (OSError, asyncpg.PostgresError) as exc:
            # Wake-ups are a hint; polling still finds the work.
            log.warning("store.listen_failed", error=str(exc))
        self._heartbeat = asyncio.create_task(self._beat(), name="store-heartbeat")

    async def _register(self, conn: _Conn) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key("node", self.node))
            others = await conn.fetchval(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1"
                " AND datname = current_database() AND pid <> pg_backend_pid()",
                self._app_name,
            )
            if others:
                raise NodeInUse(
                    f"node {self.node!r} is running elsewhere (give each node its own node_name)"
                )
            await conn.execute(
                "INSERT INTO nodes (node, epoch, heartbeat)"
                " VALUES ($1, nextval('claim_epochs'), clock_timestamp())"
                " ON CONFLICT (node) DO UPDATE SET epoch = EXCLUDED.epoch,"
                " heartbeat = EXCLUDED.heartbeat",
                self.node,
            )

    async def close(self) -> None:
        """Stop the heartbeat, give up this node's SIMs and name, close the connections."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2.0)
            self._listener = None
        if self._pool is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    async with self._pool.acquire() as conn:
                        await conn.execute("DELETE FROM sim_owners WHERE node = $1", self.node)
                        await conn.execute("DELETE FROM node_modems WHERE node = $1", self.node)
                        await conn.execute("DELETE FROM nodes WHERE node = $1", self.node)
            await self._pool.close()
            self._pool = None

    def _notified(self, *_: object) -> None:
        for cb in self._listeners:
            cb()

    def _optout_notified(self, _conn: _Conn, _pid: int, _channel: str, payload: object) -> None:
        try:
            change = json.loads(str(payload))
            node, number = str(change["node"]), str(change["number"])
            scope = None if change["scope"] is None else OptOutScope(change["scope"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("store.optout_notice_invalid", error=str(exc))
            return
        if node == self.node:
            return
        for cb in self._optout_listeners:
            cb(number, scope)

    async def _notify_optout(self, tx: _Tx, number: str, scope: OptOutScope | None) -> None:
        payload = {"node": self.node, "number": number, "scope": scope}
        await tx.db.execute("SELECT pg_notify($1, $2)", OPTOUT_CHANNEL, json.dumps(payload))

    async def _beat(self) -> None:
        """Renew this node's heartbeat (and its SIMs') every third of a lease."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                async with asyncio.timeout(self.lease_seconds / 3):
                    async with self._p.acquire() as conn:
                        await conn.execute(
                            "UPDATE nodes SET heartbeat = clock_timestamp() WHERE node = $1",
                            self.node,
                        )
                        await conn.execute(
                            "UPDATE sim_owners SET heartbeat = clock_timestamp() WHERE node = $1",
                            self.node,
                        )
                        self._depth = int(await conn.fetchval(_DEPTH))
                        await self._read_clock(conn)
                        await self._read_modems(conn)
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                log.warning("store.heartbeat_failed", node=self.node, error=str(exc))

    async def _read_clock(self, conn: _Conn) -> None:
        # The database's time at the middle of the round trip, against this host's.
        before = time.time()
        db_time: datetime = await conn.fetchval("SELECT clock_timestamp()")
        after = time.time()
        offset = db_time.timestamp() - (before + after) / 2
        if abs(offset - self.clock_offset) < CLOCK_STEP_SECONDS:
            return
        log.info("store.clock_offset", node=self.node, seconds=round(offset, 3))
        self.clock_offset = offset
        for cb in self._clock_listeners:
            cb(offset)

    async def _read_modems(self, conn: _Conn) -> None:
        rows = await conn.fetch("SELECT name, pool FROM node_modems WHERE node <> $1", self.node)
        self._elsewhere = {r["name"]: r["pool"] for r in rows}

    async def announce_modems(self, modems: Mapping[str, str]) -> None:
        """This node drives ``modems`` (name -> pool) from now on: other nodes' submits may
        name them (they read the list at their next heartbeat)."""
        async with self._tx() as tx:
            await tx.db.execute("DELETE FROM node_modems WHERE node = $1", self.node)
            await tx.db.executemany(
                "INSERT INTO node_modems (node, name, pool) VALUES ($1, $2, $3)",
                [(self.node, name, pool) for name, pool in sorted(modems.items())],
            )

    def modems_elsewhere(self) -> Mapping[str, str]:
        """The modems (name -> pool) other nodes announced, as of the last heartbeat (a
        node that crashed keeps its entries: it comes back under its name)."""
        return self._elsewhere

    def on_clock_offset(self, callback: Callable[[float], None]) -> None:
        """Call ``callback(seconds)``: how far the database's clock is ahead of this host's,
        now and whenever it moves by more than the round trip's noise."""
        self._clock_listeners.append(callback)
        callback(self.clock_offset)

    def set_webhook_url(self, url: str | None) -> None:
        """The URL every event goes to (besides a message's ``callback_url``)."""
        self._webhook_url = url

    def on_queued(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after a commit (here or on another node) that queued work."""
        self._listeners.append(callback)

    def on_outbox(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after a commit that wrote webhook events."""
        self._outbox_listeners.append(callback)

    def on_optout(self, callback: Callable[[str, OptOutScope | None], None]) -> None:
        """Call ``callback(number, scope)`` (``None``: removed) when another node changed it.

        A hint, like the queue's: ``part_sending`` checks the list in the database anyway.
        """
        self._optout_listeners.append(callback)

    def queue_depth(self) -> int:
        """Messages queued or being sent, all nodes: a counter row, never a scan.

        As of this node's last commit or look at the queue (at most ``poll_seconds`` old
        while its workers run).
        """
        return self._depth

    async def ping(self) -> None:
        """Raise if the database cannot take a write now."""
        async with self._tx() as tx:
            await tx.db.execute("SELECT 1")

    # -- plumbing ----------------------------------------------------------------------

    @property
    def _p(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[_Tx]:
        async with self._p.acquire() as conn, conn.transaction():
            tx = _Tx(conn)
            yield tx
            if tx.depth_delta:
                await conn.execute(
                    "UPDATE queue_depth SET value = value + $1 WHERE stripe = $2",
                    tx.depth_delta,
                    random.randrange(DEPTH_STRIPES),
                )
                self._depth = int(await conn.fetchval(_DEPTH))
            if tx.queued:
                await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
        if tx.queued:
            for cb in self._listeners:
                cb()
        if tx.outbox:
            for cb in self._outbox_listeners:
                cb()

    async def _lock_numbers(self, tx: _Tx, keys: Sequence[int]) -> None:
        """Take advisory locks in one global order (two batches never deadlock)."""
        for key in sorted(set(keys)):
            await tx.db.execute("SELECT pg_advisory_xact_lock($1)", key)

    async def _history(
        self,
        tx: _Tx,
        message_id: str,
        status: str,
        now: datetime,
        *,
        part_seq: int | None = None,
        detail: str | None = None,
    ) -> None:
        await tx.db.execute(
            "INSERT INTO history (message_id, part_seq, status, at, detail)"
            " VALUES ($1,$2,$3,$4,$5)",
            message_id,
            part_seq,
            status,
            to_db(now),
            detail,
        )

    async def _event(
        self,
        tx: _Tx,
        event: str,
        data: dict[str, Any],
        now: datetime,
        extra_url: str | None = None,
        sequence: int | None = None,
    ) -> None:
        urls = [u for u in (self._webhook_url, extra_url) if u]
        rows = events.build(event, data, urls, now, sequence)
        if not rows:
            return
        await tx.db.executemany(
            "INSERT INTO webhook_outbox (id, url, event, payload, status, attempts, next_at,"
            " created_at) VALUES ($1,$2,$3,$4,'pending',0,$5,$6)",
            [(r.id, r.url, r.event, r.payload, to_db(now), to_db(now)) for r in rows],
        )
        tx.outbox += len(rows)

    async def _message_event(self, tx: _Tx, event: str, message_id: str, now: datetime) -> None:
        msg = await self._load_message(tx.db, message_id, parts=True)
        if msg is None or not (self._webhook_url or msg.callback_url):
            return
        # Counted in this transaction (the row lock orders concurrent writers across nodes).
        sequence: int = await tx.db.fetchval(
            "UPDATE messages SET event_seq = event_seq + 1 WHERE id = $1 RETURNING event_seq",
            message_id,
        )
        await self._event(tx, event, message_data(msg), now, msg.callback_url, sequence)

    async def _fence(self, tx: _Tx, message_id: str, epoch: int | None = None) -> None:
        """Lock the message row; raise ``ClaimLost`` unless this node's claim (``epoch``,
        by default the one this process holds) still holds."""
        if epoch is None:
            epoch = self._claims.get(message_id)
        row = await tx.db.fetchrow(
            "SELECT status, claim_node, claim_epoch FROM messages WHERE id = $1 FOR UPDATE",
            message_id,
        )
        if row is None:
            raise WrongState(message_id, "missing")
        if epoch is None or row["claim_node"] != self.node or row["claim_epoch"] != epoch:
            self._claims.pop(message_id, None)
            raise ClaimLost(message_id, f"claimed by {row['claim_node'] or 'nobody'} now")
        self._claims[message_id] = epoch

    def claim_epoch(self, message_id: str) -> int | None:
        """The epoch of this process's claim on ``message_id`` (``None``: not claimed here)."""
        return self._claims.get(message_id)

    async def _release(self, tx: _Tx, message_id: str) -> None:
        await tx.db.execute(
            "UPDATE messages SET claim_node = NULL, claim_epoch = NULL, lease_until = NULL"
            " WHERE id = $1",
            message_id,
        )
        self._claims.pop(message_id, None)

    # -- submit ------------------------------------------------------------------------

    async def insert_messages(self, items: Sequence[NewMessage]) -> list[Inserted | Exception]:
        """Store ``items`` in one transaction; each result is ``Inserted`` or its refusal.

        Idempotency keys and recipients are locked first, in one order: the same key posted
        to two nodes at once gets one message, and an opt-out never crosses a submit.
        """
        if not items:
            return []
        out: list[Inserted | Exception] = []
        async with self._tx() as tx:
            keys = [lock_key("number", i.recipient) for i in items]
            keys += [lock_key("idem", i.idempotency_key) for i in items if i.idempotency_key]
            await self._lock_numbers(tx, keys)
            for item in items:
                try:
                    async with tx.db.transaction():
                        out.append(await self._insert_one(tx, item))
                except (
                    IdempotencyKeyReused,
                    RecipientOptedOut,
                    asyncpg.IntegrityConstraintViolationError,
                ) as e:
                    out.append(e)
        return out

    async def _insert_one(self, tx: _Tx, item: NewMessage) -> Inserted:
        if item.idempotency_key is not None:
            row = await tx.db.fetchrow(
                "SELECT message_id, request_hash FROM idempotency_keys WHERE key = $1",
                item.idempotency_key,
            )
            if row is not None:
                if row["request_hash"] != item.request_hash:
                    raise IdempotencyKeyReused(item.idempotency_key, row["message_id"])
                existing = await self._load_message(tx.db, row["message_id"], parts=True)
                if existing is not None:
                    return Inserted(existing, duplicate=True)
        if not item.optout_exempt:
            # An erased customer's opt-out is kept under the hash of the number.
            scope = await tx.db.fetchval(_OPTED_OUT, [item.recipient, erased(item.recipient)])
            if scope is not None and OptOutScope(scope).covers(item.category):
                raise RecipientOptedOut(item.recipient, scope)
        now = to_db(item.created_at)
        await tx.db.execute(
            "INSERT INTO messages (id, recipient, recipient_digits, text, category, priority,"
            " status, encoding, segments, replaced_chars, send_at, expires_at, modem, pool,"
            " metadata, callback_url, force_ucs2, smart, optout_exempt, created_at, updated_at,"
            " next_attempt_at) VALUES ($1,$2,$3,$4,$5,$6,'queued',$7,$8,$9,$10,$11,$12,$13,"
            "$14,$15,$16,$17,$18,$19,$19,$20)",
            item.id,
            item.recipient,
            digits(item.recipient),
            item.text,
            item.category.value,
            item.priority.rank,
            item.encoding,
            len(item.parts),
            json.dumps([list(p) for p in item.replaced_chars]),
            to_db(item.send_at),
            opt_to_db(item.expires_at),
            item.modem,
            item.pool,
            None if item.metadata is None else json.dumps(item.metadata),
            item.callback_url,
            int(item.force_ucs2),
            int(item.smart),
            int(item.optout_exempt),
            now,
            to_db(item.send_at),
        )
        await tx.db.executemany(
            "INSERT INTO parts (message_id, seq, pdu, tpdu_length, status)"
            " VALUES ($1,$2,$3,$4,'queued')",
            [(item.id, p.seq, p.pdu, p.tpdu_length) for p in item.parts],
        )
        await self._history(tx, item.id, MessageStatus.QUEUED, item.created_at)
        if item.idempotency_key is not None:
            await tx.db.execute(
                "INSERT INTO idempotency_keys (key, message_id, request_hash, created_at)"
                " VALUES ($1,$2,$3,$4)",
                item.idempotency_key,
                item.id,
                item.request_hash or "",
                now,
            )
        tx.depth_delta += 1
        tx.queued = True
        msg = await self._load_message(tx.db, item.id, parts=True)
        if msg is None:  # pragma: no cover - inserted above
            raise WrongState(item.id, "missing")
        return Inserted(msg, duplicate=False)

    # -- reading messages --------------------------------------------------------------

    async def get_message(self, message_id: str) -> MessageRecord | None:
        """One message with its parts and history, or ``None``."""
        async with self._p.acquire() as conn:
            return await self._load_message(conn, message_id, parts=True, history=True)

    async def list_messages(
        self,
        *,
        status: MessageStatus | None = None,
        recipient: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        before_seq: int | None = None,
    ) -> list[MessageRecord]:
        """Newest first, ``before_seq`` continuing a page."""
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        for clause, value in (
            ("status = ${}", None if status is None else status.value),
            ("recipient = ${}", recipient),
            ("created_at >= ${}", None if since is None else to_db(since)),
            ("seq < ${}", before_seq),
        ):
            if value is not None:
                params.append(value)
                where.append(clause.format(len(params)))
        params.append(limit)
        async with self._p.acquire() as conn:
            found = await conn.fetch(
                f"SELECT * FROM messages WHERE {' AND '.join(where)}"
                f" ORDER BY seq DESC LIMIT ${len(params)}",
                *params,
            )
            return [rows_.message(r, await self._load_parts(conn, r["id"])) for r in found]

    async def _load_message(
        self,
        db: _Conn,
        message_id: str,
        *,
        parts: bool = False,
        history: bool = False,
    ) -> MessageRecord | None:
        row = await db.fetchrow("SELECT * FROM messages WHERE id = $1", message_id)
        if row is None:
            return None
        part_rows = await self._load_parts(db, message_id) if parts else ()
        hist: tuple[HistoryRecord, ...] = ()
        if history:
            hist = tuple(
                rows_.history(h)
                for h in await db.fetch(
                    "SELECT * FROM history WHERE message_id = $1 ORDER BY seq", message_id
                )
            )
        return rows_.message(row, part_rows, hist)

    @staticmethod
    async def _load_parts(db: _Conn, message_id: str) -> tuple[PartRecord, ...]:
        found = await db.fetch("SELECT * FROM parts WHERE message_id = $1 ORDER BY seq", message_id)
        return tuple(rows_.part(p) for p in found)

    # -- dispatch ----------------------------------------------------------------------

    async def next_work(self, route: RouteQuery, now: datetime, *, sticky: bool) -> NextWork:
        """The next message ``route``'s worker may send now, else when to look again.

        Also: takes over claims whose lease ran out (at most once per ``poll_seconds``),
        and renews this node's ownership of the SIM; a SIM another live node owns gets no
        work. ``wake_at`` is never later than ``poll_seconds`` from ``now``.
        """
        poll = now + timedelta(seconds=self.poll_seconds)
        if time.monotonic() - self._last_takeover >= self.poll_seconds:
            self._last_takeover = time.monotonic()
            await self._take_over_expired(now)
        owned = await self._own_sim(route.identity)
        if owned is None:
            return NextWork(None, poll)
        params = (
            route.identity,
            to_db(now),
            route.modem,
            route.pool,
            route.max_parts,
            sorted(route.others_ready),
            sticky,
            not route.others_ready,
            not route.others_ready_in_pool,
        )
        async with self._p.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT * FROM ({_CANDIDATES}) c WHERE due <= $2"
                " ORDER BY priority DESC, send_at, seq LIMIT 1",
                *params,
            )
            if row is not None:
                return NextWork(rows_.message(row, ()), None, took_sim=owned)
            due = await conn.fetchval(f"SELECT MIN(due) FROM ({_CANDIDATES}) c", *params)
        wake = poll if due is None else min(poll, from_db(due))
        return NextWork(None, wake, took_sim=owned)

    async def _own_sim(self, identity: str) -> bool | None:
        """Take or renew this node's ownership of ``identity``.

        ``None``: another node's. ``True``: taken just now (a new ownership epoch: the SIM
        was free or another node's since this node last held it). ``False``: renewed.
        """
        renewed = self._sims.get(identity)
        if renewed is not None and time.monotonic() - renewed < self.lease_seconds / 3:
            return False
        async with self._p.acquire() as conn:
            row = await conn.fetchrow(_OWN_SIM, identity, self.node, self.lease_seconds)
            if row is None:
                self._sims.pop(identity, None)
                if identity not in self._refused_sims:
                    self._refused_sims.add(identity)
                    other = await conn.fetchval(
                        "SELECT node FROM sim_owners WHERE identity = $1", identity
                    )
                    log.error("sim.owned_elsewhere", alarm=True, sim=identity, node=other)
                return None
        self._refused_sims.discard(identity)
        self._sims[identity] = time.monotonic()
        epoch: int = row["epoch"]
        taken = self._sim_epochs.get(identity) != epoch
        self._sim_epochs[identity] = epoch
        if taken:
            log.info("sim.taken", sim=identity, node=self.node, epoch=epoch)
        return taken

    async def claim(self, message_id: str, identity: str, now: datetime) -> MessageRecord | None:
        """Take a queued message for this node (epoch, lease); ``None`` if someone was first.

        A message whose recipient opted out meanwhile (on any node) is cancelled instead;
        nothing is claimed for a SIM another live node owns.
        """
        if await self._own_sim(identity) is None:
            return None
        async with self._tx() as tx:
            head = await tx.db.fetchrow(
                "SELECT recipient, category, optout_exempt FROM messages WHERE id = $1",
                message_id,
            )
            if head is None:
                return None
            await self._lock_numbers(tx, [lock_key("number", head["recipient"])])
            got = await tx.db.fetchval(
                "SELECT id FROM messages WHERE id = $1 AND status = 'queued'"
                " FOR UPDATE SKIP LOCKED",
                message_id,
            )
            if got is None:
                return None
            if not head["optout_exempt"]:
                scope = await tx.db.fetchval(
                    _OPTED_OUT, [head["recipient"], erased(head["recipient"])]
                )
                if scope is not None and OptOutScope(scope).covers(Category(head["category"])):
                    await self._finish(
                        tx, message_id, now, MessageStatus.CANCELLED, code="opted_out", text=""
                    )
                    return None
            epoch = await tx.db.fetchval(
                "UPDATE messages SET status = 'sending', updated_at = $2, claim_node = $3,"
                " claim_epoch = nextval('claim_epochs'),"
                " lease_until = clock_timestamp() + make_interval(secs => $4)"
                " WHERE id = $1 RETURNING claim_epoch",
                message_id,
                to_db(now),
                self.node,
                self.claim_lease_seconds,
            )
            await self._history(tx, message_id, MessageStatus.SENDING, now, detail=identity)
            msg = await self._load_message(tx.db, message_id, parts=True)
        self._claims[message_id] = int(epoch)
        return msg

    async def replace_parts(
        self, message_id: str, parts: Sequence[tuple[str, int]], now: datetime, reason: str
    ) -> MessageRecord:
        """Re-encoded parts for a whole resend on another SIM (new concatenation reference)."""
        async with self._tx() as tx:
            await self._fence(tx, message_id)
            await tx.db.execute("DELETE FROM parts WHERE message_id = $1", message_id)
            await tx.db.executemany(
                "INSERT INTO parts (message_id, seq, pdu, tpdu_length, status)"
                " VALUES ($1,$2,$3,$4,'queued')",
                [(message_id, n, pdu, length) for n, (pdu, length) in enumerate(parts, 1)],
            )
            await tx.db.execute(
                "UPDATE messages SET segments = $1, identity = NULL, bound_until = NULL,"
                " stray_part_possible = 1, updated_at = $2 WHERE id = $3",
                len(parts),
                to_db(now),
                message_id,
            )
            await self._history(tx, message_id, "resent_whole", now, detail=reason)
            msg = await self._load_message(tx.db, message_id, parts=True)
        if msg is None:
            raise WrongState(message_id, "missing")
        return msg

    async def part_sending(
        self, message_id: str, seq: int, identity: str, modem: str, now: datetime
    ) -> None:
        """Mark a part ``sending`` and count it, just before ``AT+CMGS``.

        The last check before the modem: this node still holds the claim (epoch) and its
        lease (extended here), still owns the SIM, and the recipient has not opted out on
        any node (``RecipientOptedOut``); else ``ClaimLost`` and nothing is written.
        """
        async with self._tx() as tx:
            head = await tx.db.fetchrow(
                "SELECT recipient, category, optout_exempt FROM messages WHERE id = $1",
                message_id,
            )
            if head is None:
                raise WrongState(message_id, "missing")
            await self._lock_numbers(tx, [lock_key("number", head["recipient"])])
            await self._fence(tx, message_id)
            held = await tx.db.fetchval(
                "UPDATE messages SET identity = $2, avoid_identity = NULL, updated_at = $3,"
                " lease_until = clock_timestamp() + make_interval(secs => $4)"
                " WHERE id = $1 AND lease_until > clock_timestamp() RETURNING 1",
                message_id,
                identity,
                to_db(now),
                self.claim_lease_seconds,
            )
            if held is None:
                raise ClaimLost(message_id, "lease ran out")
            owner = await tx.db.fetchval(_OWN_SIM, identity, self.node, self.lease_seconds)
            if owner is None:
                self._sims.pop(identity, None)
                raise ClaimLost(message_id, f"SIM {identity} is not this node's")
            if not head["optout_exempt"]:
                scope = await tx.db.fetchval(
                    _OPTED_OUT, [head["recipient"], erased(head["recipient"])]
                )
                if scope is not None and OptOutScope(scope).covers(Category(head["category"])):
                    raise RecipientOptedOut(head["recipient"], scope)
            await tx.db.execute(
                "UPDATE parts SET status = 'sending', identity = $1, attempts = attempts + 1"
                " WHERE message_id = $2 AND seq = $3",
                identity,
                message_id,
                seq,
            )
            await tx.db.execute(
                "INSERT INTO send_log (identity, at) VALUES ($1,$2)", identity, to_db(now)
            )
            await self._history(tx, message_id, PartStatus.SENDING, now, part_seq=seq, detail=modem)

    async def part_sent(
        self,
        message_id: str,
        seq: int,
        mr: int,
        now: datetime,
        *,
        counted_at: datetime | None = None,
        epoch: int | None = None,
    ) -> MessageStatus:
        """Record ``+CMGS: <mr>``; the message becomes ``sent`` with its last part.

        ``counted_at``: when the part was counted against its SIM's limits; the count moves
        to ``now`` (the SMS left in between). ``epoch``: the claim the part went under, for
        an answer written late from the outcome journal (also after this node restarted).
        """
        async with self._tx() as tx:
            await self._fence(tx, message_id, epoch)
            if counted_at is not None:
                await self._move_count(tx, message_id, seq, counted_at, now)
            await tx.db.execute(
                "UPDATE parts SET status = 'sent', mr = $1, sent_at = $2, error_code = NULL,"
                " error_text = NULL WHERE message_id = $3 AND seq = $4",
                mr,
                to_db(now),
                message_id,
                seq,
            )
            await self._history(tx, message_id, PartStatus.SENT, now, part_seq=seq, detail=str(mr))
            return await self._settle(tx, message_id, now)

    async def part_unconfirmed(
        self,
        message_id: str,
        seq: int,
        now: datetime,
        detail: str,
        *,
        counted_at: datetime | None = None,
        left_by: datetime | None = None,
    ) -> MessageStatus:
        """The part may or may not have gone (at-most-once: never resent).

        ``counted_at``: when the part was counted against its SIM's limits; the count moves
        to ``left_by`` (default ``now``), the latest moment the part may have left the SIM.
        """
        async with self._tx() as tx:
            await self._fence(tx, message_id)
            if counted_at is not None:
                await self._move_count(tx, message_id, seq, counted_at, left_by or now)
            await tx.db.execute(
                "UPDATE parts SET status = 'unconfirmed', error_text = $1"
                " WHERE message_id = $2 AND seq = $3",
                detail,
                message_id,
                seq,
            )
            await self._history(
                tx, message_id, PartStatus.UNCONFIRMED, now, part_seq=seq, detail=detail
            )
            return await self._settle(tx, message_id, now)

    @staticmethod
    async def _move_count(
        tx: _Tx, message_id: str, seq: int, counted_at: datetime, now: datetime
    ) -> None:
        await tx.db.execute(
            "UPDATE send_log SET at = $1 WHERE id = (SELECT l.id FROM send_log l"
            " JOIN parts p ON p.identity = l.identity WHERE p.message_id = $2"
            " AND p.seq = $3 AND l.at = $4 LIMIT 1)",
            to_db(now),
            message_id,
            seq,
            to_db(counted_at),
        )

    async def _settle(self, tx: _Tx, message_id: str, now: datetime) -> MessageStatus:
        """After a part changed: the message is sent once no part is left to send."""
        row = await tx.db.fetchrow(
            "SELECT m.status, m.recipient, m.identity,"
            " COUNT(*) FILTER (WHERE p.status IN ('queued','sending')) AS left_,"
            " COUNT(*) FILTER (WHERE p.status = 'unconfirmed') AS unconfirmed"
            " FROM messages m JOIN parts p ON p.message_id = m.id WHERE m.id = $1"
            " GROUP BY m.status, m.recipient, m.identity",
            message_id,
        )
        if row is None:
            raise WrongState(message_id, "missing")
        status = MessageStatus(row["status"])
        if status not in PENDING_STATUSES or row["left_"]:
            return status
        new = MessageStatus.UNCONFIRMED if row["unconfirmed"] else MessageStatus.SENT
        await tx.db.execute(
            "UPDATE messages SET status = $1, updated_at = $2, bound_until = NULL WHERE id = $3",
            new.value,
            to_db(now),
            message_id,
        )
        await self._release(tx, message_id)
        await self._history(tx, message_id, new, now)
        tx.depth_delta -= 1
        if row["identity"] is not None:
            await tx.db.execute(
                "INSERT INTO sticky_recipients (recipient, identity, at) VALUES ($1,$2,$3)"
                " ON CONFLICT (recipient) DO UPDATE SET identity = EXCLUDED.identity,"
                " at = EXCLUDED.at",
                row["recipient"],
                row["identity"],
                to_db(now),
            )
        await self._message_event(tx, "message.sent", message_id, now)
        return new

    async def requeue(
        self,
        message_id: str,
        now: datetime,
        *,
        next_attempt_at: datetime,
        count_attempt: bool,
        avoid_identity: str | None,
        bound_until: datetime | None,
        error_code: str | None = None,
        error_text: str | None = None,
    ) -> None:
        """Hand a claimed message back to the queue (parts not yet out go back to queued)."""
        async with self._tx() as tx:
            await self._fence(tx, message_id)
            await tx.db.execute(
                "UPDATE parts SET status = 'queued', next_attempt_at = $1"
                " WHERE message_id = $2 AND status = 'sending'",
                to_db(next_attempt_at),
                message_id,
            )
            some_out = bool(
                await tx.db.fetchval(
                    f"SELECT COUNT(*) FROM parts WHERE message_id = $1 AND status IN "
                    f"({_GONE_OUT_SQL})",
                    message_id,
                )
            )
            await tx.db.execute(
                "UPDATE messages SET status = 'queued', next_attempt_at = $1,"
                " attempts = attempts + $2, avoid_identity = CASE WHEN $3 THEN NULL ELSE $4 END,"
                " updated_at = $5,"
                " error_code = COALESCE($6, error_code), error_text = COALESCE($7, error_text),"
                " bound_until = $8, identity = CASE WHEN $3 THEN identity ELSE NULL END"
                " WHERE id = $9 AND status IN ('queued','sending')",
                to_db(next_attempt_at),
                int(count_attempt),
                some_out,  # a message bound to its SIM avoids none
                avoid_identity,
                to_db(now),
                error_code,
                error_text,
                opt_to_db(bound_until) if some_out else None,
                message_id,
            )
            await self._release(tx, message_id)
            detail = error_text or error_code
            await self._history(tx, message_id, MessageStatus.QUEUED, now, detail=detail)
            tx.queued = True

    async def fail_message(
        self, message_id: str, now: datetime, *, code: str, text: str
    ) -> MessageStatus:
        """Fail a message for good: parts not yet out fail with it; webhook."""
        async with self._tx() as tx:
            await self._fence(tx, message_id)
            return await self._finish(
                tx, message_id, now, MessageStatus.FAILED, code=code, text=text
            )

    async def cancel_message(
        self, message_id: str, now: datetime, *, reason: str, allow_sending: bool = False
    ) -> MessageRecord:
        """Cancel a queued message (``WrongState`` otherwise; ``sending`` only by its claimer)."""
        async with self._tx() as tx:
            status = await tx.db.fetchval(
                "SELECT status FROM messages WHERE id = $1 FOR UPDATE", message_id
            )
            if status is None:
                raise WrongState(message_id, "missing")
            allowed = {MessageStatus.QUEUED} | ({MessageStatus.SENDING} if allow_sending else set())
            if MessageStatus(status) not in allowed:
                raise WrongState(message_id, status)
            if status == MessageStatus.SENDING:
                await self._fence(tx, message_id)
            await self._finish(tx, message_id, now, MessageStatus.CANCELLED, code=reason, text="")
            msg = await self._load_message(tx.db, message_id, parts=True, history=True)
        if msg is None:  # pragma: no cover - it was just updated
            raise WrongState(message_id, "missing")
        return msg

    async def _finish(
        self,
        tx: _Tx,
        message_id: str,
        now: datetime,
        status: MessageStatus,
        *,
        code: str,
        text: str,
    ) -> MessageStatus:
        part_status = {
            MessageStatus.FAILED: PartStatus.FAILED,
            MessageStatus.CANCELLED: PartStatus.CANCELLED,
            MessageStatus.EXPIRED: PartStatus.EXPIRED,
        }[status]
        done = await tx.db.execute(
            "UPDATE messages SET status = $1, error_code = $2, error_text = $3, updated_at = $4,"
            " bound_until = NULL WHERE id = $5 AND status IN ('queued','sending')",
            status.value,
            code,
            text or None,
            to_db(now),
            message_id,
        )
        if _count(done) != 1:
            current = await tx.db.fetchval("SELECT status FROM messages WHERE id = $1", message_id)
            return MessageStatus(current) if current else status
        await self._release(tx, message_id)
        await tx.db.execute(
            "UPDATE parts SET status = $1, error_code = $2, error_text = $3"
            " WHERE message_id = $4 AND status IN ('queued','sending')",
            part_status.value,
            code,
            text or None,
            message_id,
        )
        await self._history(tx, message_id, status, now, detail=f"{code} {text}".strip())
        tx.depth_delta -= 1
        if status is MessageStatus.FAILED:
            await self._message_event(tx, "message.failed", message_id, now)
        return status

    async def expire_due(self, now: datetime) -> list[str]:
        """Expire every queued message past its ``expires_at``; returns their ids."""
        async with self._tx() as tx:
            found = await tx.db.fetch(
                "SELECT id FROM messages WHERE status = 'queued' AND expires_at IS NOT NULL"
                " AND expires_at <= $1 FOR UPDATE SKIP LOCKED",
                to_db(now),
            )
            ids = [r["id"] for r in found]
            for mid in ids:
                await self._finish(tx, mid, now, MessageStatus.EXPIRED, code="expired", text="")
        return ids

    async def next_expiry(self) -> datetime | None:
        """The earliest ``expires_at`` among queued messages."""
        async with self._p.acquire() as conn:
            t = await conn.fetchval("SELECT MIN(expires_at) FROM messages WHERE status = 'queued'")
        return opt_from_db(t)

    async def recover(
        self,
        now: datetime,
        *,
        resend_categories: frozenset[Category],
        bound_until: datetime,
        send_within: float = 0.0,
    ) -> tuple[int, int]:
        """Resolve work this node's crash left ``sending``, and claims whose lease ran out.

        The rule is SQLite's (parts left ``sending`` become ``unconfirmed`` or go back to the
        queue per category); claims other live nodes hold are left alone. Returns (parts
        unconfirmed, parts requeued).
        """
        self._resend = resend_categories
        self._failover = bound_until - now
        self._send_within = timedelta(seconds=send_within)
        async with self._tx() as tx:
            return await self._resolve(
                tx,
                now,
                "claim_node = $1 OR claim_node IS NULL OR lease_until < clock_timestamp()",
                self.node,
                restart=True,
            )

    async def _take_over_expired(self, now: datetime) -> None:
        async with self._tx() as tx:
            # Any node's, this one's too: a live worker renews its lease at every part, well
            # within it, so an expired one was lost (a stalled node, a hand-back that failed
            # while the database was gone); a worker still holding it is fenced by the epoch.
            unconfirmed, requeued = await self._resolve(tx, now, "lease_until < clock_timestamp()")
            # Other nodes change the depth too: this node's view is at most a poll old.
            self._depth = int(await tx.db.fetchval(_DEPTH))
        if unconfirmed or requeued:
            log.warning(
                "dispatch.took_over", node=self.node, unconfirmed=unconfirmed, requeued=requeued
            )

    async def _resolve(
        self, tx: _Tx, now: datetime, where: str, *params: Any, restart: bool = False
    ) -> tuple[int, int]:
        """Apply the unknown-outcome rule to the sending messages ``where`` selects."""
        stuck = await tx.db.fetch(
            f"SELECT id, category, claim_node FROM messages WHERE status = 'sending'"
            f" AND ({where}) ORDER BY seq FOR UPDATE SKIP LOCKED",
            *params,
        )
        unconfirmed = requeued = 0
        bound_until = now + self._failover
        for msg in stuck:
            resend = Category(msg["category"]) in self._resend
            parts = await tx.db.fetch(
                "SELECT seq, identity FROM parts WHERE message_id = $1 AND status = 'sending'",
                msg["id"],
            )
            for part in parts:
                # Its count is the SIM's entry made with its last `sending` history row (the
                # SIM's latest entry may be an earlier unknown outcome's, held in the future);
                # it moves to the latest the part may have left (SQLite's recover).
                last = await tx.db.fetchrow(
                    "SELECT id, at FROM send_log WHERE identity = $1 AND at = (SELECT MAX(at)"
                    " FROM history WHERE message_id = $2 AND part_seq = $3 AND status = 'sending')"
                    " LIMIT 1",
                    part["identity"],
                    msg["id"],
                    part["seq"],
                )
                if last is not None:
                    left_by = max(now, from_db(last["at"]) + self._send_within)
                    await tx.db.execute(
                        "UPDATE send_log SET at = $1 WHERE id = $2", to_db(left_by), last["id"]
                    )
                new = PartStatus.QUEUED if resend else PartStatus.UNCONFIRMED
                why = "outcome unknown after restart"
                if not restart or msg["claim_node"] not in (None, self.node):
                    why = f"outcome unknown: node {msg['claim_node']} lost its lease"
                await tx.db.execute(
                    "UPDATE parts SET status = $1, error_text = $2 WHERE message_id = $3"
                    " AND seq = $4",
                    new.value,
                    why,
                    msg["id"],
                    part["seq"],
                )
                await self._history(tx, msg["id"], new, now, part_seq=part["seq"], detail=why)
                if resend:
                    requeued += 1
                else:
                    unconfirmed += 1
            await self._release(tx, msg["id"])
            status = await self._settle(tx, msg["id"], now)
            if status is not MessageStatus.SENDING:
                continue
            some_out = bool(
                await tx.db.fetchval(
                    f"SELECT COUNT(*) FROM parts WHERE message_id = $1 AND status IN "
                    f"({_GONE_OUT_SQL})",
                    msg["id"],
                )
            )
            await tx.db.execute(
                "UPDATE messages SET status = 'queued', updated_at = $1, bound_until = $2,"
                " identity = CASE WHEN $3 THEN identity ELSE NULL END WHERE id = $4",
                to_db(now),
                to_db(bound_until) if some_out else None,
                some_out,
                msg["id"],
            )
            await self._history(tx, msg["id"], MessageStatus.QUEUED, now, detail="restart")
            tx.queued = True
        return unconfirmed, requeued

    # -- limits ------------------------------------------------------------------------

    async def send_log(
        self, since: datetime, identity: str | None = None
    ) -> dict[str, list[datetime]]:
        """Every counted part per SIM identity since ``since``, oldest first.

        ``identity``: that SIM's parts only (a SIM this node takes over from another).
        """
        async with self._p.acquire() as conn:
            found = await conn.fetch(
                "SELECT identity, at FROM send_log WHERE at >= $1"
                " AND ($2::text IS NULL OR identity = $2) ORDER BY at, id",
                to_db(since),
                identity,
            )
        out: dict[str, list[datetime]] = {}
        for row in found:
            out.setdefault(row["identity"], []).append(from_db(row["at"]))
        return out

    async def prune_send_log(self, before: datetime) -> None:
        """Forget counted parts older than every window."""
        async with self._tx() as tx:
            await tx.db.execute("DELETE FROM send_log WHERE at < $1", to_db(before))

    # -- delivery reports --------------------------------------------------------------

    async def apply_report(
        self, report: ReportIn, now: datetime, *, since: datetime
    ) -> ReportMatch | None:
        """Match a report to the oldest part without a final report (see DESIGN: reports)."""
        async with self._tx() as tx:
            # Reports for one SIM and MR from two readers must not both take the same part.
            await self._lock_numbers(tx, [lock_key("report", f"{report.identity}:{report.mr}")])
            found = await tx.db.fetch(
                "SELECT p.message_id, p.seq, m.recipient_digits FROM parts p"
                " JOIN messages m ON m.id = p.message_id"
                " WHERE p.identity = $1 AND p.mr = $2 AND p.status IN ('sent','report_timeout')"
                " AND p.sent_at >= $3 ORDER BY p.sent_at, m.seq, p.seq",
                report.identity,
                report.mr,
                to_db(since),
            )
            hit = next(
                (r for r in found if digits_match(r["recipient_digits"], report.recipient)), None
            )
            if hit is None:
                await tx.db.execute(
                    "INSERT INTO unmatched_reports (identity, mr, recipient, status, status_text,"
                    " discharge_time, received_at) VALUES ($1,$2,$3,$4,$5,$6,$7)",
                    report.identity,
                    report.mr,
                    report.recipient,
                    report.status,
                    report.status_text,
                    to_db(report.discharge_time),
                    to_db(now),
                )
                return None
            mid, seq = hit["message_id"], hit["seq"]
            if not report.final:
                await tx.db.execute(
                    "UPDATE parts SET report_status = $1, report_at = $2"
                    " WHERE message_id = $3 AND seq = $4",
                    report.status,
                    to_db(now),
                    mid,
                    seq,
                )
                await self._history(
                    tx, mid, "report_pending", now, part_seq=seq, detail=report.status_text
                )
                status = await tx.db.fetchval("SELECT status FROM messages WHERE id = $1", mid)
                return ReportMatch(mid, seq, MessageStatus(status or "sent"))
            part_status = PartStatus.DELIVERED if report.delivered else PartStatus.FAILED
            await tx.db.execute(
                "UPDATE parts SET status = $1, report_status = $2, report_at = $3,"
                " delivered_at = $4, error_code = $5, error_text = $6"
                " WHERE message_id = $7 AND seq = $8",
                part_status.value,
                report.status,
                to_db(now),
                to_db(now) if report.delivered else None,
                None if report.delivered else f"tp_st_{report.status}",
                None if report.delivered else report.status_text,
                mid,
                seq,
            )
            await self._history(tx, mid, part_status, now, part_seq=seq, detail=report.status_text)
            return ReportMatch(mid, seq, await self._after_report(tx, mid, now, report))

    async def _after_report(
        self, tx: _Tx, message_id: str, now: datetime, report: ReportIn
    ) -> MessageStatus:
        row = await tx.db.fetchrow(
            "SELECT m.status, COUNT(*) AS total,"
            " COUNT(*) FILTER (WHERE p.status = 'delivered') AS delivered"
            " FROM messages m JOIN parts p ON p.message_id = m.id WHERE m.id = $1"
            " GROUP BY m.status",
            message_id,
        )
        if row is None:
            raise WrongState(message_id, "missing")
        status = MessageStatus(row["status"])
        if status in (MessageStatus.FAILED, MessageStatus.DELIVERED):
            return status
        if not report.delivered:
            new, event = MessageStatus.FAILED, "message.failed"
            await tx.db.execute(
                "UPDATE messages SET status = 'failed', error_code = $1, error_text = $2,"
                " updated_at = $3 WHERE id = $4",
                f"tp_st_{report.status}",
                report.status_text,
                to_db(now),
                message_id,
            )
        elif row["delivered"] == row["total"]:
            new, event = MessageStatus.DELIVERED, "message.delivered"
            await tx.db.execute(
                "UPDATE messages SET status = 'delivered', updated_at = $1 WHERE id = $2",
                to_db(now),
                message_id,
            )
        else:
            return status
        if status in PENDING_STATUSES:
            tx.depth_delta -= 1
        await self._history(tx, message_id, new, now, detail=report.status_text)
        await self._message_event(tx, event, message_id, now)
        return new

    async def timeout_reports(self, now: datetime, *, sent_before: datetime) -> int:
        """Parts sent before ``sent_before`` with no final report become ``report_timeout``."""
        async with self._tx() as tx:
            found = await tx.db.fetch(
                "UPDATE parts SET status = 'report_timeout' WHERE status = 'sent'"
                " AND sent_at <= $1 RETURNING message_id, seq",
                to_db(sent_before),
            )
            for row in found:
                await self._history(
                    tx, row["message_id"], PartStatus.REPORT_TIMEOUT, now, part_seq=row["seq"]
                )
        return len(found)

    async def next_report_deadline(self) -> datetime | None:
        """The send time of the oldest part still waiting for its report."""
        async with self._p.acquire() as conn:
            t = await conn.fetchval("SELECT MIN(sent_at) FROM parts WHERE status = 'sent'")
        return opt_from_db(t)

    # -- opt-outs ----------------------------------------------------------------------

    async def add_optout(
        self, number: str, scope: OptOutScope, source: str, now: datetime
    ) -> OptOutResult:
        """Put ``number`` on the list and cancel, in the same transaction, what it covers.

        Serialised with submits and claims on the number: once this commits, no node
        claims or starts a part to ``number`` that the scope covers.
        """
        async with self._tx() as tx:
            await self._lock_numbers(tx, [lock_key("number", number)])
            row = await tx.db.fetchrow("SELECT * FROM optouts WHERE number = $1", number)
            changed = True
            if row is None:
                await tx.db.execute(
                    "INSERT INTO optouts (number, scope, source, created_at) VALUES ($1,$2,$3,$4)",
                    number,
                    scope.value,
                    source,
                    to_db(now),
                )
            elif row["scope"] == OptOutScope.MARKETING and scope is OptOutScope.ALL:
                await tx.db.execute(
                    "UPDATE optouts SET scope = 'all', source = $1, created_at = $2"
                    " WHERE number = $3",
                    source,
                    to_db(now),
                    number,
                )
            else:
                changed = False
            rec_row = await tx.db.fetchrow("SELECT * FROM optouts WHERE number = $1", number)
            if rec_row is None:  # pragma: no cover - written above
                raise WrongState(number, "missing")
            record = rows_.optout(rec_row)
            cancelled = await tx.db.fetch(
                "SELECT id FROM messages WHERE recipient = $1 AND status = 'queued'"
                " AND optout_exempt = 0 AND ($2 = 'all' OR category = 'marketing')"
                " ORDER BY seq FOR UPDATE",
                number,
                record.scope.value,
            )
            ids = tuple(r["id"] for r in cancelled)
            for mid in ids:
                await self._finish(tx, mid, now, MessageStatus.CANCELLED, code="opted_out", text="")
            if changed:
                await self._event(tx, "optout.created", optout_data(record), now)
                await self._notify_optout(tx, number, record.scope)
        return OptOutResult(record, ids)

    async def remove_optout(self, number: str, now: datetime) -> bool:
        """Take ``number`` off the list; ``False`` if it was not on it."""
        async with self._tx() as tx:
            await self._lock_numbers(tx, [lock_key("number", number)])
            row = await tx.db.fetchrow("DELETE FROM optouts WHERE number = $1 RETURNING *", number)
            if row is None:
                return False
            await self._event(tx, "optout.removed", optout_data(rows_.optout(row)), now)
            await self._notify_optout(tx, number, None)
        return True

    async def optouts(self) -> dict[str, OptOutScope]:
        """The whole list (the core keeps it in memory for the check at the prompt)."""
        async with self._p.acquire() as conn:
            found = await conn.fetch("SELECT number, scope FROM optouts")
        return {r["number"]: OptOutScope(r["scope"]) for r in found}

    async def list_optouts(self, *, limit: int, before_seq: int | None) -> list[OptOutRecord]:
        """Newest first."""
        async with self._p.acquire() as conn:
            found = await conn.fetch(
                "SELECT * FROM optouts WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
                before_seq if before_seq is not None else 2**62,
                limit,
            )
        return [rows_.optout(r) for r in found]

    # -- inbound -----------------------------------------------------------------------

    async def record_inbound(self, part: NewInboundPart) -> tuple[InboundRecord, bool]:
        """Store one received part, reassembling; returns the message and whether it is new.

        A part already stored (same SIM, sender, SCTS and PDU) changes nothing, whichever
        node read it first.
        """
        async with self._tx() as tx:
            await self._lock_numbers(tx, [lock_key("inbound", f"{part.identity}:{part.sender}")])
            dup = await tx.db.fetchval(
                "SELECT inbound_id FROM inbound_parts WHERE identity = $1 AND sender = $2"
                " AND scts = $3 AND pdu_hash = $4",
                part.identity,
                part.sender,
                to_db(part.scts),
                part.pdu_hash,
            )
            if dup is not None:
                return await self._load_inbound(tx.db, dup), False
            total = part.concat_total or 1
            seq_no = part.concat_seq or 1
            inbound_id = None
            if total > 1:
                inbound_id = await tx.db.fetchval(
                    "SELECT i.id FROM inbound_messages i WHERE i.identity = $1 AND i.sender = $2"
                    " AND i.concat_ref = $3 AND i.concat_total = $4"
                    " AND i.status IN ('partial','incomplete')"
                    " AND NOT EXISTS (SELECT 1 FROM inbound_parts q WHERE q.inbound_id = i.id"
                    " AND q.part_seq = $5) ORDER BY i.seq LIMIT 1",
                    part.identity,
                    part.sender,
                    part.concat_ref,
                    total,
                    seq_no,
                )
            if inbound_id is None:
                inbound_id = new_id()
                await tx.db.execute(
                    "INSERT INTO inbound_messages (id, identity, modem, sender, concat_ref,"
                    " concat_total, status, text, first_received_at)"
                    " VALUES ($1,$2,$3,$4,$5,$6,$7,'',$8)",
                    inbound_id,
                    part.identity,
                    part.modem,
                    part.sender,
                    part.concat_ref if total > 1 else None,
                    total,
                    InboundStatus.PARTIAL.value,
                    to_db(part.received_at),
                )
            await tx.db.execute(
                "INSERT INTO inbound_parts (inbound_id, part_seq, identity, sender, scts,"
                " pdu_hash, text, received_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                inbound_id,
                seq_no,
                part.identity,
                part.sender,
                to_db(part.scts),
                part.pdu_hash,
                part.text,
                to_db(part.received_at),
            )
            texts = await tx.db.fetch(
                "SELECT text FROM inbound_parts WHERE inbound_id = $1 ORDER BY part_seq",
                inbound_id,
            )
            text = "".join(r["text"] for r in texts)
            if len(texts) >= total:
                await tx.db.execute(
                    "UPDATE inbound_messages SET status = 'complete', text = $1,"
                    " completed_at = $2 WHERE id = $3",
                    text,
                    to_db(part.received_at),
                    inbound_id,
                )
                rec = await self._load_inbound(tx.db, inbound_id)
                await self._event(tx, "message.received", inbound_data(rec), part.received_at)
            else:
                await tx.db.execute(
                    "UPDATE inbound_messages SET text = $1 WHERE id = $2", text, inbound_id
                )
                rec = await self._load_inbound(tx.db, inbound_id)
        return rec, True

    async def mark_incomplete(self, now: datetime, *, first_before: datetime) -> list[str]:
        """Show partial messages older than ``first_before`` as incomplete; returns ids."""
        async with self._tx() as tx:
            found = await tx.db.fetch(
                "UPDATE inbound_messages SET status = 'incomplete' WHERE status = 'partial'"
                " AND first_received_at <= $1 RETURNING id",
                to_db(first_before),
            )
            for row in found:
                rec = await self._load_inbound(tx.db, row["id"])
                await self._event(tx, "message.received", inbound_data(rec), now)
        return [r["id"] for r in found]

    async def next_incomplete(self) -> datetime | None:
        """When the oldest partial message started arriving."""
        async with self._p.acquire() as conn:
            t = await conn.fetchval(
                "SELECT MIN(first_received_at) FROM inbound_messages WHERE status = 'partial'"
            )
        return opt_from_db(t)

    async def mark_inbound_processed(self, inbound_id: str) -> None:
        """Keywords of this message were acted on."""
        async with self._tx() as tx:
            await tx.db.execute(
                "UPDATE inbound_messages SET processed = 1 WHERE id = $1", inbound_id
            )

    async def unprocessed_inbound(self) -> list[InboundRecord]:
        """Complete messages whose keywords were never acted on (a crash in between)."""
        async with self._p.acquire() as conn:
            found = await conn.fetch(
                "SELECT id FROM inbound_messages WHERE status = 'complete' AND processed = 0"
                " ORDER BY seq"
            )
            return [await self._load_inbound(conn, r["id"]) for r in found]

    async def list_inbound(self, *, limit: int, before_seq: int | None) -> list[InboundRecord]:
        """Complete and incomplete (shown) inbound messages, newest first."""
        async with self._p.acquire() as conn:
            found = await conn.fetch(
                "SELECT id FROM inbound_messages WHERE status IN ('complete','incomplete')"
                " AND seq < $1 ORDER BY seq DESC LIMIT $2",
                before_seq if before_seq is not None else 2**62,
                limit,
            )
            return [await self._load_inbound(conn, r["id"]) for r in found]

    @staticmethod
    async def _load_inbound(db: _Conn, inbound_id: str) -> InboundRecord:
        row = await db.fetchrow(
            "SELECT i.*, (SELECT COUNT(*) FROM inbound_parts q WHERE q.inbound_id = i.id) AS n"
            " FROM inbound_messages i WHERE i.id = $1",
            inbound_id,
        )
        if row is None:
            raise WrongState(inbound_id, "missing")
        return rows_.inbound(row)

    # -- webhook outbox ----------------------------------------------------------------

    async def claim_webhooks(self, now: datetime, limit: int) -> list[WebhookDelivery]:
        """Due deliveries, leased so a crash mid-POST retries them later (any node)."""
        lease = now + timedelta(seconds=WEBHOOK_LEASE_SECONDS)
        async with self._tx() as tx:
            found = await tx.db.fetch(
                "UPDATE webhook_outbox SET next_at = $1 WHERE seq IN (SELECT seq FROM"
                " webhook_outbox WHERE status = 'pending' AND next_at <= $2"
                " ORDER BY next_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED)"
                " RETURNING seq, id, url, event, payload, attempts",
                to_db(lease),
                to_db(now),
                limit,
            )
        return [rows_.delivery(r) for r in sorted(found, key=lambda r: int(r["seq"]))]

    async def webhook_delivered(self, id: str, now: datetime) -> None:
        """The receiver answered 2xx."""
        async with self._tx() as tx:
            await tx.db.execute(
                "UPDATE webhook_outbox SET status = 'delivered', delivered_at = $1,"
                " attempts = attempts + 1 WHERE id = $2",
                to_db(now),
                id,
            )

    async def webhook_retry(self, id: str, next_at: datetime, error: str) -> None:
        """Try again at ``next_at``."""
        async with self._tx() as tx:
            await tx.db.execute(
                "UPDATE webhook_outbox SET attempts = attempts + 1, next_at = $1,"
                " last_error = $2 WHERE id = $3",
                to_db(next_at),
                error,
                id,
            )

    async def webhook_gave_up(self, id: str, error: str) -> None:
        """No more attempts; kept for ``list_webhook_failures``."""
        async with self._tx() as tx:
            await tx.db.execute(
                "UPDATE webhook_outbox SET status = 'failed', attempts = attempts + 1,"
                " last_error = $1 WHERE id = $2",
                error,
                id,
            )

    async def list_webhook_failures(
        self, limit: int, cursor: str | None = None
    ) -> Page[WebhookFailure]:
        """Deliveries that gave up, newest first; ``cursor`` continues a page."""
        async with self._p.acquire() as conn:
            found = await conn.fetch(
                "SELECT * FROM webhook_outbox WHERE status = 'failed' AND seq < $1"
                " ORDER BY seq DESC LIMIT $2",
                parse_cursor(cursor),
                limit,
            )
        return Page.of([rows_.failure(r) for r in found], limit)

    async def record_event(self, event: str, data: dict[str, Any], now: datetime) -> None:
        """Write one webhook event that belongs to no message (fleet alarms, missed calls)."""
        async with self._tx() as tx:
            await self._event(tx, event, data, now)

    async def pending_webhooks(self) -> list[WebhookDelivery]:
        """Every undelivered outbox row, oldest first (inspection and tests)."""
        async with self._p.acquire() as conn:
            found = await conn.fetch(
                "SELECT * FROM webhook_outbox WHERE status = 'pending' ORDER BY seq"
            )
        return [rows_.delivery(r) for r in found]

    async def unmatched_reports(self) -> int:
        """How many reports matched no part."""
        async with self._p.acquire() as conn:
            return int(await conn.fetchval("SELECT COUNT(*) FROM unmatched_reports"))
