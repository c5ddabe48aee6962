"""The SQLite store (one host): WAL, foreign keys, group commit, one writer connection.

Durability: ``synchronous=FULL``. In WAL mode ``NORMAL`` can lose the last transactions on a
power cut (the WAL is fsynced only at checkpoints), and a submit acknowledged with 202 must
survive exactly that (DESIGN: invariants); FULL fsyncs the WAL at every commit, and group
commit spreads that cost over every submit in the batch.

Concurrency: one writer connection; every write transaction holds ``_lock`` so statements of
two transactions never interleave on it. Reads use a second connection (WAL readers never
block the writer and never see another transaction half-done). Submits go through a single
writer task that takes everything queued since its last commit into one transaction, with a
savepoint per submit so one refused item never fails the others; that transaction runs as one
synchronous function on the writer connection's thread (one hop, not one per statement).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiosqlite
import structlog

from gatewayd.store import events
from gatewayd.store import rows as rows_
from gatewayd.store.conn_thread import run_on_connection_thread
from gatewayd.store.errors import IdempotencyKeyReused, RecipientOptedOut, WrongState
from gatewayd.store.ids import new_id
from gatewayd.store.migrate import migrate
from gatewayd.store.numbers import digits, digits_match, erased
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


_GONE_OUT_SQL = ",".join(f"'{s.value}'" for s in sorted(GONE_OUT))
_NOT_SENT_SQL = "'queued','sending'"

# INDEXED BY: left to itself the planner takes messages_status (status=?) and sorts every
# queued row for each look (35 ms at 100,000 queued); the queue index is already in dispatch
# order, so the first due row ends the scan (0.01 ms at any depth; docs/benchmarks.md).
_CANDIDATES = """
SELECT m.*,
    CASE WHEN m.identity IS NOT NULL AND m.identity != :me AND m.bound_until IS NOT NULL
              AND m.bound_until > m.next_attempt_at
         THEN m.bound_until ELSE m.next_attempt_at END AS due
FROM messages m INDEXED BY messages_queue
LEFT JOIN sticky_recipients s ON s.recipient = m.recipient
WHERE m.status = 'queued'
  AND (m.expires_at IS NULL OR m.expires_at > :now)
  AND (m.modem IS NULL OR m.modem = :modem)
  AND (m.pool IS NULL OR m.pool = :pool)
  AND (:max_parts IS NULL OR m.segments <= :max_parts)
  AND (m.identity IS NULL OR m.identity = :me
       OR m.identity NOT IN (SELECT value FROM json_each(:others)))
  AND (:sticky = 0 OR m.modem IS NOT NULL OR s.identity IS NULL OR s.identity = :me
       OR s.identity = m.avoid_identity
       OR s.identity NOT IN (SELECT value FROM json_each(:others)))
  AND (m.avoid_identity IS NULL OR m.avoid_identity != :me OR m.modem IS NOT NULL
       OR (m.pool IS NULL AND :alone = 1) OR (m.pool IS NOT NULL AND :alone_in_pool = 1))
"""


@dataclass
class _Tx:
    """What one transaction changed that outlives it: queue depth, who to wake."""

    db: aiosqlite.Connection
    depth_delta: int = 0
    queued: bool = False
    outbox: int = 0


@dataclass
class _SubmitJob:
    items: Sequence[NewMessage]
    future: asyncio.Future[list[Inserted | Exception]] = field(repr=False)


class SqliteStore:
    """The gateway's persistence on one SQLite file (see the module docstring)."""

    def __init__(self, path: str, *, webhook_url: str | None = None) -> None:
        self._path = path
        self._webhook_url = webhook_url
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._depth = 0
        self._jobs: list[_SubmitJob] = []
        self._jobs_ready = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        # Submits in the largest group committed so far (observability of group commit).
        self.max_group = 0
        self._listeners: list[Callable[[], None]] = []
        self._outbox_listeners: list[Callable[[], None]] = []
        # Messages whose claim is in flight here: the workers' next_work skips them and a
        # second claim of one returns None at once, so workers that looked at the same
        # time do not all queue a losing transaction behind the writer lock.
        self._claiming: set[str] = set()

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file, run migrations, load the queue depth, start the submit writer."""
        db = await aiosqlite.connect(self._path, isolation_level=None)
        db.row_factory = sqlite3.Row
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=FULL")
        await db.execute("PRAGMA foreign_keys=ON")
        await db.execute("PRAGMA busy_timeout=5000")
        await migrate(db)
        reader = await aiosqlite.connect(self._path, isolation_level=None)
        reader.row_factory = sqlite3.Row
        await reader.execute("PRAGMA foreign_keys=ON")
        await reader.execute("PRAGMA busy_timeout=5000")
        self._db, self._reader = db, reader
        row = await self._one(
            "SELECT COUNT(*) AS n FROM messages WHERE status IN ('queued','sending')", ()
        )
        self._depth = int(row["n"]) if row else 0
        self._writer = asyncio.create_task(self._submit_writer(), name="store-submit-writer")

    async def close(self) -> None:
        """Stop the writer (failing submits still waiting) and close both connections."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        for job in self._jobs:
            if not job.future.done():
                job.future.set_exception(RuntimeError("store closed"))
        self._jobs.clear()
        for conn in (self._db, self._reader):
            if conn is not None:
                await conn.close()
        self._db = self._reader = None

    def set_webhook_url(self, url: str | None) -> None:
        """The URL every event goes to (besides a message's ``callback_url``)."""
        self._webhook_url = url

    def on_queued(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after a commit that made a message dispatchable."""
        self._listeners.append(callback)

    def on_outbox(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after a commit that wrote webhook events."""
        self._outbox_listeners.append(callback)

    def on_optout(self, callback: Callable[[str, OptOutScope | None], None]) -> None:
        """Never called: one host, so no other node changes the opt-out list."""
        del callback

    async def announce_modems(self, modems: Mapping[str, str]) -> None:
        """Nothing to announce: one host, no other node submits."""
        del modems

    def modems_elsewhere(self) -> Mapping[str, str]:
        """Always empty: one host."""
        return {}

    def claim_epoch(self, message_id: str) -> int | None:
        """Always ``None``: one host, no claims between nodes."""
        del message_id
        return None

    def on_clock_offset(self, callback: Callable[[float], None]) -> None:
        """Never called: the file is this host's own, and so is its one clock."""
        del callback

    def queue_depth(self) -> int:
        """Messages queued or being sent: a counter, never a scan."""
        return self._depth

    async def ping(self) -> None:
        """Raise if the database cannot take a write lock now."""
        async with self._tx():
            pass

    # -- plumbing ----------------------------------------------------------------------

    @property
    def _w(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    @property
    def _r(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("store is not open")
        return self._reader

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[_Tx]:
        async with self._lock:
            db = self._w
            await db.execute("BEGIN IMMEDIATE")
            tx = _Tx(db)
            try:
                yield tx
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")
        self._after_commit(tx)

    def _after_commit(self, tx: _Tx) -> None:
        self._depth += tx.depth_delta
        if tx.queued:
            for cb in self._listeners:
                cb()
        if tx.outbox:
            for cb in self._outbox_listeners:
                cb()

    # Reads use execute_fetchall: one hop to the connection's thread instead of three
    # (execute, fetch, close); each query here returns one row or a bounded list
    # (docs/benchmarks.md).

    async def _one(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> sqlite3.Row | None:
        return _first(await self._r.execute_fetchall(sql, params))

    async def _all(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[sqlite3.Row]:
        return list(await self._r.execute_fetchall(sql, params))

    @staticmethod
    async def _tx_one(
        tx: _Tx, sql: str, params: Sequence[Any] | dict[str, Any]
    ) -> sqlite3.Row | None:
        return _first(await tx.db.execute_fetchall(sql, params))

    @staticmethod
    async def _tx_all(
        tx: _Tx, sql: str, params: Sequence[Any] | dict[str, Any]
    ) -> list[sqlite3.Row]:
        return list(await tx.db.execute_fetchall(sql, params))

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
            "INSERT INTO history (message_id, part_seq, status, at, detail) VALUES (?,?,?,?,?)",
            (message_id, part_seq, status, to_db(now), detail),
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
            " created_at) VALUES (?,?,?,?,'pending',0,?,?)",
            [(r.id, r.url, r.event, r.payload, to_db(now), to_db(now)) for r in rows],
        )
        tx.outbox += len(rows)

    async def _message_event(self, tx: _Tx, event: str, message_id: str, now: datetime) -> None:
        msg = await self._load_message(tx.db, message_id, parts=True)
        if msg is None or not (self._webhook_url or msg.callback_url):
            return
        # Counted in this transaction: the order of the message's events as written.
        row = await self._tx_one(
            tx,
            "UPDATE messages SET event_seq = event_seq + 1 WHERE id = ? RETURNING event_seq",
            (message_id,),
        )
        sequence = None if row is None else int(row[0])
        await self._event(tx, event, events.message_data(msg), now, msg.callback_url, sequence)

    # -- submit (group commit) ---------------------------------------------------------

    async def insert_messages(self, items: Sequence[NewMessage]) -> list[Inserted | Exception]:
        """Store ``items``; each result is ``Inserted`` or the refusal for that item.

        Returns after the commit (durable). Concurrent calls share one transaction.
        """
        if not items:
            return []
        fut: asyncio.Future[list[Inserted | Exception]] = asyncio.get_running_loop().create_future()
        self._jobs.append(_SubmitJob(items, fut))
        self._jobs_ready.set()
        return await fut

    async def _submit_writer(self) -> None:
        while True:
            await self._jobs_ready.wait()
            # One loop turn lets submits that arrived in the same tick join this group;
            # under load the group is whatever queued up during the previous commit.
            await asyncio.sleep(0)
            self._jobs_ready.clear()
            jobs, self._jobs = self._jobs, []
            if not jobs:
                continue
            try:
                results = await self._commit_group(jobs)
            except Exception as exc:
                log.exception("store.group_commit_failed", submits=len(jobs))
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            for job, result in zip(jobs, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)

    async def _commit_group(self, jobs: list[_SubmitJob]) -> list[list[Inserted | Exception]]:
        self.max_group = max(self.max_group, sum(len(job.items) for job in jobs))
        async with self._lock:
            db = self._w
            tx = _Tx(db)
            # The whole transaction is one call on the writer connection's thread: one
            # round trip per group instead of about six per message (docs/benchmarks.md).
            results = await run_on_connection_thread(
                db, lambda conn: _commit_group_sync(conn, tx, [job.items for job in jobs])
            )
        self._after_commit(tx)
        return results

    # -- reading messages --------------------------------------------------------------

    async def get_message(self, message_id: str) -> MessageRecord | None:
        """One message with its parts and history, or ``None``."""
        return await self._load_message(self._r, message_id, parts=True, history=True)

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
        where: list[str] = ["1=1"]
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        if recipient is not None:
            where.append("recipient = ?")
            params.append(recipient)
        if since is not None:
            where.append("created_at >= ?")
            params.append(to_db(since))
        if before_seq is not None:
            where.append("seq < ?")
            params.append(before_seq)
        rows = await self._all(
            f"SELECT * FROM messages WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?",
            [*params, limit],
        )
        out = []
        for row in rows:
            parts = await self._load_parts(self._r, row["id"])
            out.append(rows_.message(row, parts))
        return out

    async def _load_message(
        self,
        db: aiosqlite.Connection,
        message_id: str,
        *,
        parts: bool = False,
        history: bool = False,
    ) -> MessageRecord | None:
        rows = await db.execute_fetchall("SELECT * FROM messages WHERE id = ?", (message_id,))
        row = _first(rows)
        if row is None:
            return None
        part_rows = await self._load_parts(db, message_id) if parts else ()
        hist: tuple[HistoryRecord, ...] = ()
        if history:
            hist = tuple(
                rows_.history(h)
                for h in await db.execute_fetchall(
                    "SELECT * FROM history WHERE message_id = ? ORDER BY seq", (message_id,)
                )
            )
        return rows_.message(row, part_rows, hist)

    @staticmethod
    async def _load_parts(db: aiosqlite.Connection, message_id: str) -> tuple[PartRecord, ...]:
        rows = await db.execute_fetchall(
            "SELECT * FROM parts WHERE message_id = ? ORDER BY seq", (message_id,)
        )
        return tuple(rows_.part(p) for p in rows)

    # -- dispatch ----------------------------------------------------------------------

    async def next_work(self, route: RouteQuery, now: datetime, *, sticky: bool) -> NextWork:
        """The next message ``route``'s worker may send now, else when to look again."""
        params = {
            "me": route.identity,
            "now": to_db(now),
            "modem": route.modem,
            "pool": route.pool,
            "max_parts": route.max_parts,
            "others": json.dumps(sorted(route.others_ready)),
            "sticky": int(sticky),
            "alone": int(not route.others_ready),
            "alone_in_pool": int(not route.others_ready_in_pool),
        }
        row = await self._one(
            f"SELECT * FROM ({_CANDIDATES}) WHERE due <= :now"
            " AND id NOT IN (SELECT value FROM json_each(:claiming))"
            " ORDER BY priority DESC, send_at, seq LIMIT 1",
            {**params, "claiming": json.dumps(sorted(self._claiming))},
        )
        if row is not None:
            return NextWork(rows_.message(row, ()), None)
        row = await self._one(f"SELECT MIN(due) AS due FROM ({_CANDIDATES})", params)
        wake = opt_from_db(row["due"]) if row is not None else None
        return NextWork(None, wake)

    async def claim(self, message_id: str, identity: str, now: datetime) -> MessageRecord | None:
        """Take a queued message for ``identity``'s worker; ``None`` if someone was first."""
        if message_id in self._claiming:
            return None
        self._claiming.add(message_id)
        try:
            async with self._tx() as tx:
                cur = await tx.db.execute(
                    "UPDATE messages SET status = 'sending', updated_at = ? "
                    "WHERE id = ? AND status = 'queued'",
                    (to_db(now), message_id),
                )
                if cur.rowcount != 1:
                    return None
                await self._history(tx, message_id, MessageStatus.SENDING, now, detail=identity)
                return await self._load_message(tx.db, message_id, parts=True)
        except BaseException:
            # Still queued: the workers that skipped it must look again.
            for cb in self._listeners:
                cb()
            raise
        finally:
            self._claiming.discard(message_id)

    async def replace_parts(
        self, message_id: str, parts: Sequence[tuple[str, int]], now: datetime, reason: str
    ) -> MessageRecord:
        """Re-encoded parts for a whole resend on another SIM (new concatenation reference).

        The recipient may hold a stray part of the first attempt: the message records it.
        """
        async with self._tx() as tx:
            await tx.db.execute("DELETE FROM parts WHERE message_id = ?", (message_id,))
            await tx.db.executemany(
                "INSERT INTO parts (message_id, seq, pdu, tpdu_length, status)"
                " VALUES (?,?,?,?,'queued')",
                [(message_id, n, pdu, length) for n, (pdu, length) in enumerate(parts, 1)],
            )
            await tx.db.execute(
                "UPDATE messages SET segments = ?, identity = NULL, bound_until = NULL,"
                " stray_part_possible = 1, updated_at = ? WHERE id = ?",
                (len(parts), to_db(now), message_id),
            )
            await self._history(tx, message_id, "resent_whole", now, detail=reason)
            msg = await self._load_message(tx.db, message_id, parts=True)
        if msg is None:
            raise WrongState(message_id, "missing")
        return msg

    async def part_sending(
        self, message_id: str, seq: int, identity: str, modem: str, now: datetime
    ) -> None:
        """Mark a part ``sending`` and count it against ``identity``'s limits (before Ctrl-Z)."""
        async with self._tx() as tx:
            await tx.db.execute(
                "UPDATE parts SET status = 'sending', identity = ?, attempts = attempts + 1 "
                "WHERE message_id = ? AND seq = ?",
                (identity, message_id, seq),
            )
            await tx.db.execute(
                "UPDATE messages SET identity = ?, avoid_identity = NULL, updated_at = ?"
                " WHERE id = ?",
                (identity, to_db(now), message_id),
            )
            await tx.db.execute(
                "INSERT INTO send_log (identity, at) VALUES (?,?)", (identity, to_db(now))
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
        to ``now`` (the SMS left in between). ``epoch`` is always ``None`` here: one host,
        no claims to fence.
        """
        del epoch
        async with self._tx() as tx:
            if counted_at is not None:
                await tx.db.execute(
                    "UPDATE send_log SET at = ? WHERE rowid = (SELECT l.rowid FROM send_log l"
                    " JOIN parts p ON p.identity = l.identity WHERE p.message_id = ?"
                    " AND p.seq = ? AND l.at = ? LIMIT 1)",
                    (to_db(now), message_id, seq, to_db(counted_at)),
                )
            await tx.db.execute(
                "UPDATE parts SET status = 'sent', mr = ?, sent_at = ?, error_code = NULL,"
                " error_text = NULL WHERE message_id = ? AND seq = ?",
                (mr, to_db(now), message_id, seq),
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
            if counted_at is not None:
                await tx.db.execute(
                    "UPDATE send_log SET at = ? WHERE rowid = (SELECT l.rowid FROM send_log l"
                    " JOIN parts p ON p.identity = l.identity WHERE p.message_id = ?"
                    " AND p.seq = ? AND l.at = ? LIMIT 1)",
                    (to_db(left_by or now), message_id, seq, to_db(counted_at)),
                )
            await tx.db.execute(
                "UPDATE parts SET status = 'unconfirmed', error_text = ? "
                "WHERE message_id = ? AND seq = ?",
                (detail, message_id, seq),
            )
            await self._history(
                tx, message_id, PartStatus.UNCONFIRMED, now, part_seq=seq, detail=detail
            )
            return await self._settle(tx, message_id, now)

    async def _settle(self, tx: _Tx, message_id: str, now: datetime) -> MessageStatus:
        """After a part changed: the message is sent once no part is left to send."""
        row = await self._tx_one(
            tx,
            "SELECT m.status, m.recipient, m.identity,"
            " SUM(p.status IN ('queued','sending')) AS left_,"
            " SUM(p.status = 'unconfirmed') AS unconfirmed,"
            " SUM(p.status = 'failed') AS failed"
            " FROM messages m JOIN parts p ON p.message_id = m.id WHERE m.id = ?",
            (message_id,),
        )
        if row is None or row["status"] is None:
            raise WrongState(message_id, "missing")
        status = MessageStatus(row["status"])
        if status not in PENDING_STATUSES or row["left_"]:
            return status
        new = MessageStatus.UNCONFIRMED if row["unconfirmed"] else MessageStatus.SENT
        await tx.db.execute(
            "UPDATE messages SET status = ?, updated_at = ?, bound_until = NULL WHERE id = ?",
            (new.value, to_db(now), message_id),
        )
        await self._history(tx, message_id, new, now)
        tx.depth_delta -= 1
        if row["identity"] is not None:
            await tx.db.execute(
                "INSERT INTO sticky_recipients (recipient, identity, at) VALUES (?,?,?)"
                " ON CONFLICT (recipient) DO UPDATE SET identity = excluded.identity,"
                " at = excluded.at",
                (row["recipient"], row["identity"], to_db(now)),
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
        """Hand a claimed message back to the queue (parts not yet out go back to queued).

        If some parts already went, the message stays bound to that SIM until
        ``bound_until``; else any SIM may take it.
        """
        async with self._tx() as tx:
            await tx.db.execute(
                "UPDATE parts SET status = 'queued', next_attempt_at = ? "
                "WHERE message_id = ? AND status = 'sending'",
                (to_db(next_attempt_at), message_id),
            )
            row = await self._tx_one(
                tx,
                f"SELECT COUNT(*) AS n FROM parts WHERE message_id = ? AND status IN "
                f"({_GONE_OUT_SQL})",
                (message_id,),
            )
            some_out = bool(row and row["n"])
            await tx.db.execute(
                "UPDATE messages SET status = 'queued', next_attempt_at = ?,"
                " attempts = attempts + ?, avoid_identity = CASE WHEN ? THEN NULL ELSE ? END,"
                " updated_at = ?,"
                " error_code = COALESCE(?, error_code), error_text = COALESCE(?, error_text),"
                " bound_until = ?, identity = CASE WHEN ? THEN identity ELSE NULL END"
                " WHERE id = ? AND status IN ('queued','sending')",
                (
                    to_db(next_attempt_at),
                    int(count_attempt),
                    int(some_out),  # a message bound to its SIM avoids none
                    avoid_identity,
                    to_db(now),
                    error_code,
                    error_text,
                    opt_to_db(bound_until) if some_out else None,
                    int(some_out),
                    message_id,
                ),
            )
            detail = error_text or error_code
            await self._history(tx, message_id, MessageStatus.QUEUED, now, detail=detail)
            tx.queued = True

    async def fail_message(
        self, message_id: str, now: datetime, *, code: str, text: str
    ) -> MessageStatus:
        """Fail a message for good: parts not yet out fail with it; webhook."""
        async with self._tx() as tx:
            return await self._finish(
                tx, message_id, now, MessageStatus.FAILED, code=code, text=text
            )

    async def cancel_message(
        self, message_id: str, now: datetime, *, reason: str, allow_sending: bool = False
    ) -> MessageRecord:
        """Cancel a queued message (``WrongState`` otherwise; ``sending`` only by dispatch)."""
        async with self._tx() as tx:
            row = await self._tx_one(tx, "SELECT status FROM messages WHERE id = ?", (message_id,))
            if row is None:
                raise WrongState(message_id, "missing")
            allowed = {MessageStatus.QUEUED} | ({MessageStatus.SENDING} if allow_sending else set())
            if MessageStatus(row["status"]) not in allowed:
                raise WrongState(message_id, row["status"])
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
        cur = await tx.db.execute(
            "UPDATE messages SET status = ?, error_code = ?, error_text = ?, updated_at = ?,"
            " bound_until = NULL WHERE id = ? AND status IN ('queued','sending')",
            (status.value, code, text or None, to_db(now), message_id),
        )
        if cur.rowcount != 1:
            row = await self._tx_one(tx, "SELECT status FROM messages WHERE id = ?", (message_id,))
            return MessageStatus(row["status"]) if row else status
        await tx.db.execute(
            f"UPDATE parts SET status = ?, error_code = ?, error_text = ? "
            f"WHERE message_id = ? AND status IN ({_NOT_SENT_SQL})",
            (part_status.value, code, text or None, message_id),
        )
        await self._history(tx, message_id, status, now, detail=f"{code} {text}".strip())
        tx.depth_delta -= 1
        if status is MessageStatus.FAILED:
            await self._message_event(tx, "message.failed", message_id, now)
        return status

    async def expire_due(self, now: datetime) -> list[str]:
        """Expire every queued message past its ``expires_at``; returns their ids."""
        async with self._tx() as tx:
            rows = await self._tx_all(
                tx,
                "SELECT id FROM messages WHERE status = 'queued' AND expires_at IS NOT NULL"
                " AND expires_at <= ?",
                (to_db(now),),
            )
            ids = [r["id"] for r in rows]
            for mid in ids:
                await self._finish(tx, mid, now, MessageStatus.EXPIRED, code="expired", text="")
        return ids

    async def next_expiry(self) -> datetime | None:
        """The earliest ``expires_at`` among queued messages."""
        row = await self._one(
            "SELECT MIN(expires_at) AS t FROM messages WHERE status = 'queued'", ()
        )
        return opt_from_db(row["t"]) if row else None

    async def recover(
        self,
        now: datetime,
        *,
        resend_categories: frozenset[Category],
        bound_until: datetime,
        send_within: float = 0.0,
    ) -> tuple[int, int]:
        """Resolve work a crash left ``sending`` (see gatewayd.core.dispatch for the rule).

        Parts left ``sending`` become ``unconfirmed`` (at-most-once) or go back to the queue
        when their category is in ``resend_categories``; messages left ``sending`` go back to
        the queue (bound to their SIM when parts went) or become sent/unconfirmed when no
        part is left. Returns (parts unconfirmed, parts requeued).

        Such a part may have left its SIM up to ``send_within`` seconds after its Ctrl-Z (or
        until now), so its count against the SIM's limits moves to the later of those (like
        ``part_sent`` moves it to the answer): left at its Ctrl-Z, the window would open early
        by as long as the modem took.
        """
        unconfirmed = requeued = 0
        async with self._tx() as tx:
            rows = await self._tx_all(
                tx,
                "SELECT p.message_id, p.seq, p.identity, m.category FROM parts p JOIN messages m"
                " ON m.id = p.message_id WHERE p.status = 'sending'",
                (),
            )
            for row in rows:
                # Its count is the SIM's entry made with its last `sending` history row (the
                # SIM's latest entry may be an earlier unknown outcome's, held in the future).
                last = await self._tx_one(
                    tx,
                    "SELECT rowid, at FROM send_log WHERE identity = ? AND at = (SELECT MAX(at)"
                    " FROM history WHERE message_id = ? AND part_seq = ? AND status = 'sending')"
                    " LIMIT 1",
                    (row["identity"], row["message_id"], row["seq"]),
                )
                if last is not None:
                    left_by = max(now, from_db(last["at"]) + timedelta(seconds=send_within))
                    await tx.db.execute(
                        "UPDATE send_log SET at = ? WHERE rowid = ?",
                        (to_db(left_by), last["rowid"]),
                    )
                resend = Category(row["category"]) in resend_categories
                new = PartStatus.QUEUED if resend else PartStatus.UNCONFIRMED
                await tx.db.execute(
                    "UPDATE parts SET status = ?, error_text = ? WHERE message_id = ? AND seq = ?",
                    (new.value, "outcome unknown after restart", row["message_id"], row["seq"]),
                )
                await self._history(
                    tx,
                    row["message_id"],
                    new,
                    now,
                    part_seq=row["seq"],
                    detail="outcome unknown after restart",
                )
                if resend:
                    requeued += 1
                else:
                    unconfirmed += 1
            stuck = await self._tx_all(tx, "SELECT id FROM messages WHERE status = 'sending'", ())
            for row in stuck:
                status = await self._settle(tx, row["id"], now)
                if status is not MessageStatus.SENDING:
                    continue
                out = await self._tx_one(
                    tx,
                    f"SELECT COUNT(*) AS n FROM parts WHERE message_id = ? AND status IN "
                    f"({_GONE_OUT_SQL})",
                    (row["id"],),
                )
                some_out = bool(out and out["n"])
                await tx.db.execute(
                    "UPDATE messages SET status = 'queued', updated_at = ?, bound_until = ?,"
                    " identity = CASE WHEN ? THEN identity ELSE NULL END WHERE id = ?",
                    (
                        to_db(now),
                        to_db(bound_until) if some_out else None,
                        int(some_out),
                        row["id"],
                    ),
                )
                await self._history(tx, row["id"], MessageStatus.QUEUED, now, detail="restart")
                tx.queued = True
        return unconfirmed, requeued

    # -- limits ------------------------------------------------------------------------

    async def send_log(
        self, since: datetime, identity: str | None = None
    ) -> dict[str, list[datetime]]:
        """Every counted part per SIM identity since ``since``, oldest first.

        ``identity``: that SIM's parts only (a SIM this node takes over from another).
        """
        rows = await self._all(
            "SELECT identity, at FROM send_log WHERE at >= ? AND (? IS NULL OR identity = ?)"
            " ORDER BY at",
            (to_db(since), identity, identity),
        )
        out: dict[str, list[datetime]] = {}
        for row in rows:
            out.setdefault(row["identity"], []).append(from_db(row["at"]))
        return out

    async def prune_send_log(self, before: datetime) -> None:
        """Forget counted parts older than every window."""
        async with self._tx() as tx:
            await tx.db.execute("DELETE FROM send_log WHERE at < ?", (to_db(before),))

    # -- delivery reports --------------------------------------------------------------

    async def apply_report(
        self, report: ReportIn, now: datetime, *, since: datetime
    ) -> ReportMatch | None:
        """Match a report to the oldest part without a final report (see DESIGN: reports).

        Candidates share the SIM and TP-MR, were sent since ``since`` and went to the same
        number (compared as digits); an unmatched report is kept and ``None`` returned.
        """
        async with self._tx() as tx:
            rows = await self._tx_all(
                tx,
                "SELECT p.message_id, p.seq, m.recipient_digits FROM parts p"
                " JOIN messages m ON m.id = p.message_id"
                " WHERE p.identity = ? AND p.mr = ? AND p.status IN ('sent','report_timeout')"
                " AND p.sent_at >= ? ORDER BY p.sent_at, p.rowid",
                (report.identity, report.mr, to_db(since)),
            )
            hit = next(
                (r for r in rows if digits_match(r["recipient_digits"], report.recipient)), None
            )
            if hit is None:
                await tx.db.execute(
                    "INSERT INTO unmatched_reports (identity, mr, recipient, status, status_text,"
                    " discharge_time, received_at) VALUES (?,?,?,?,?,?,?)",
                    (
                        report.identity,
                        report.mr,
                        report.recipient,
                        report.status,
                        report.status_text,
                        to_db(report.discharge_time),
                        to_db(now),
                    ),
                )
                return None
            mid, seq = hit["message_id"], hit["seq"]
            if not report.final:
                await tx.db.execute(
                    "UPDATE parts SET report_status = ?, report_at = ? "
                    "WHERE message_id = ? AND seq = ?",
                    (report.status, to_db(now), mid, seq),
                )
                await self._history(
                    tx, mid, "report_pending", now, part_seq=seq, detail=report.status_text
                )
                row = await self._tx_one(tx, "SELECT status FROM messages WHERE id = ?", (mid,))
                return ReportMatch(mid, seq, MessageStatus(row["status"] if row else "sent"))
            part_status = PartStatus.DELIVERED if report.delivered else PartStatus.FAILED
            await tx.db.execute(
                "UPDATE parts SET status = ?, report_status = ?, report_at = ?,"
                " delivered_at = ?, error_code = ?, error_text = ?"
                " WHERE message_id = ? AND seq = ?",
                (
                    part_status.value,
                    report.status,
                    to_db(now),
                    to_db(now) if report.delivered else None,
                    None if report.delivered else f"tp_st_{report.status}",
                    None if report.delivered else report.status_text,
                    mid,
                    seq,
                ),
            )
            await self._history(tx, mid, part_status, now, part_seq=seq, detail=report.status_text)
            status = await self._after_report(tx, mid, now, report)
            return ReportMatch(mid, seq, status)

    async def _after_report(
        self, tx: _Tx, message_id: str, now: datetime, report: ReportIn
    ) -> MessageStatus:
        row = await self._tx_one(
            tx,
            "SELECT m.status, COUNT(*) AS total, SUM(p.status = 'delivered') AS delivered"
            " FROM messages m JOIN parts p ON p.message_id = m.id WHERE m.id = ?",
            (message_id,),
        )
        if row is None or row["status"] is None:
            raise WrongState(message_id, "missing")
        status = MessageStatus(row["status"])
        if status in (MessageStatus.FAILED, MessageStatus.DELIVERED):
            return status
        if not report.delivered:
            new, event = MessageStatus.FAILED, "message.failed"
            await tx.db.execute(
                "UPDATE messages SET status = 'failed', error_code = ?, error_text = ?,"
                " updated_at = ? WHERE id = ?",
                (f"tp_st_{report.status}", report.status_text, to_db(now), message_id),
            )
        elif row["delivered"] == row["total"]:
            new, event = MessageStatus.DELIVERED, "message.delivered"
            await tx.db.execute(
                "UPDATE messages SET status = 'delivered', updated_at = ? WHERE id = ?",
                (to_db(now), message_id),
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
            rows = await self._tx_all(
                tx,
                "UPDATE parts SET status = 'report_timeout' WHERE status = 'sent'"
                " AND sent_at <= ? RETURNING message_id, seq",
                (to_db(sent_before),),
            )
            for row in rows:
                await self._history(
                    tx, row["message_id"], PartStatus.REPORT_TIMEOUT, now, part_seq=row["seq"]
                )
        return len(rows)

    async def next_report_deadline(self) -> datetime | None:
        """The send time of the oldest part still waiting for its report."""
        row = await self._one("SELECT MIN(sent_at) AS t FROM parts WHERE status = 'sent'", ())
        return opt_from_db(row["t"]) if row else None

    # -- opt-outs ----------------------------------------------------------------------

    async def add_optout(
        self, number: str, scope: OptOutScope, source: str, now: datetime
    ) -> OptOutResult:
        """Put ``number`` on the list and cancel, in the same transaction, what it covers.

        An ``all`` entry is never narrowed to ``marketing``.
        """
        async with self._tx() as tx:
            row = await self._tx_one(tx, "SELECT * FROM optouts WHERE number = ?", (number,))
            changed = True
            if row is None:
                await tx.db.execute(
                    "INSERT INTO optouts (number, scope, source, created_at) VALUES (?,?,?,?)",
                    (number, scope.value, source, to_db(now)),
                )
            elif row["scope"] == OptOutScope.MARKETING and scope is OptOutScope.ALL:
                await tx.db.execute(
                    "UPDATE optouts SET scope = 'all', source = ?, created_at = ? WHERE number = ?",
                    (source, to_db(now), number),
                )
            else:
                changed = False
            rec_row = await self._tx_one(tx, "SELECT * FROM optouts WHERE number = ?", (number,))
            if rec_row is None:  # pragma: no cover - written above
                raise WrongState(number, "missing")
            record = rows_.optout(rec_row)
            cancelled = await self._tx_all(
                tx,
                "SELECT id FROM messages WHERE recipient = ? AND status = 'queued'"
                " AND optout_exempt = 0 AND (? = 'all' OR category = 'marketing')",
                (number, record.scope.value),
            )
            ids = tuple(r["id"] for r in cancelled)
            for mid in ids:
                await self._finish(tx, mid, now, MessageStatus.CANCELLED, code="opted_out", text="")
            if changed:
                await self._event(tx, "optout.created", events.optout_data(record), now)
        return OptOutResult(record, ids)

    async def remove_optout(self, number: str, now: datetime) -> bool:
        """Take ``number`` off the list; ``False`` if it was not on it."""
        async with self._tx() as tx:
            row = await self._tx_one(tx, "SELECT * FROM optouts WHERE number = ?", (number,))
            if row is None:
                return False
            await tx.db.execute("DELETE FROM optouts WHERE number = ?", (number,))
            await self._event(tx, "optout.removed", events.optout_data(rows_.optout(row)), now)
        return True

    async def optouts(self) -> dict[str, OptOutScope]:
        """The whole list (the core keeps it in memory for the check at the prompt)."""
        rows = await self._all("SELECT number, scope FROM optouts", ())
        return {r["number"]: OptOutScope(r["scope"]) for r in rows}

    async def list_optouts(self, *, limit: int, before_seq: int | None) -> list[OptOutRecord]:
        """Newest first."""
        rows = await self._all(
            "SELECT * FROM optouts WHERE seq < ? ORDER BY seq DESC LIMIT ?",
            (before_seq if before_seq is not None else 2**62, limit),
        )
        return [rows_.optout(r) for r in rows]

    # -- inbound -----------------------------------------------------------------------

    async def record_inbound(self, part: NewInboundPart) -> tuple[InboundRecord, bool]:
        """Store one received part, reassembling; returns the message and whether it is new.

        A part already stored (same SIM, sender, SCTS and PDU) changes nothing.
        """
        async with self._tx() as tx:
            dup = await self._tx_one(
                tx,
                "SELECT inbound_id FROM inbound_parts WHERE identity = ? AND sender = ?"
                " AND scts = ? AND pdu_hash = ?",
                (part.identity, part.sender, to_db(part.scts), part.pdu_hash),
            )
            if dup is not None:
                rec = await self._load_inbound(tx.db, dup["inbound_id"])
                return rec, False
            total = part.concat_total or 1
            seq_no = part.concat_seq or 1
            inbound_id = None
            if total > 1:
                group = await self._tx_one(
                    tx,
                    "SELECT i.id FROM inbound_messages i WHERE i.identity = ? AND i.sender = ?"
                    " AND i.concat_ref = ? AND i.concat_total = ?"
                    " AND i.status IN ('partial','incomplete')"
                    " AND NOT EXISTS (SELECT 1 FROM inbound_parts q WHERE q.inbound_id = i.id"
                    " AND q.part_seq = ?) ORDER BY i.seq LIMIT 1",
                    (part.identity, part.sender, part.concat_ref, total, seq_no),
                )
                inbound_id = group["id"] if group is not None else None
            if inbound_id is None:
                inbound_id = new_id()
                await tx.db.execute(
                    "INSERT INTO inbound_messages (id, identity, modem, sender, concat_ref,"
                    " concat_total, status, text, first_received_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        inbound_id,
                        part.identity,
                        part.modem,
                        part.sender,
                        part.concat_ref if total > 1 else None,
                        total,
                        InboundStatus.PARTIAL.value,
                        "",
                        to_db(part.received_at),
                    ),
                )
            await tx.db.execute(
                "INSERT INTO inbound_parts (inbound_id, part_seq, identity, sender, scts,"
                " pdu_hash, text, received_at) VALUES (?,?,?,?,?,?,?,?)",
                (
                    inbound_id,
                    seq_no,
                    part.identity,
                    part.sender,
                    to_db(part.scts),
                    part.pdu_hash,
                    part.text,
                    to_db(part.received_at),
                ),
            )
            texts = await self._tx_all(
                tx,
                "SELECT text FROM inbound_parts WHERE inbound_id = ? ORDER BY part_seq",
                (inbound_id,),
            )
            text = "".join(r["text"] for r in texts)
            if len(texts) >= total:
                await tx.db.execute(
                    "UPDATE inbound_messages SET status = 'complete', text = ?, completed_at = ?"
                    " WHERE id = ?",
                    (text, to_db(part.received_at), inbound_id),
                )
                rec = await self._load_inbound(tx.db, inbound_id)
                await self._event(
                    tx, "message.received", events.inbound_data(rec), part.received_at
                )
            else:
                await tx.db.execute(
                    "UPDATE inbound_messages SET text = ? WHERE id = ?", (text, inbound_id)
                )
                rec = await self._load_inbound(tx.db, inbound_id)
        return rec, True

    async def mark_incomplete(self, now: datetime, *, first_before: datetime) -> list[str]:
        """Show partial messages older than ``first_before`` as incomplete; returns ids."""
        async with self._tx() as tx:
            rows = await self._tx_all(
                tx,
                "UPDATE inbound_messages SET status = 'incomplete' WHERE status = 'partial'"
                " AND first_received_at <= ? RETURNING id",
                (to_db(first_before),),
            )
            for row in rows:
                rec = await self._load_inbound(tx.db, row["id"])
                await self._event(tx, "message.received", events.inbound_data(rec), now)
        return [r["id"] for r in rows]

    async def next_incomplete(self) -> datetime | None:
        """When the oldest partial message started arriving."""
        row = await self._one(
            "SELECT MIN(first_received_at) AS t FROM inbound_messages WHERE status = 'partial'",
            (),
        )
        return opt_from_db(row["t"]) if row else None

    async def mark_inbound_processed(self, inbound_id: str) -> None:
        """Keywords of this message were acted on."""
        async with self._tx() as tx:
            await tx.db.execute(
                "UPDATE inbound_messages SET processed = 1 WHERE id = ?", (inbound_id,)
            )

    async def unprocessed_inbound(self) -> list[InboundRecord]:
        """Complete messages whose keywords were never acted on (a crash in between)."""
        rows = await self._all(
            "SELECT id FROM inbound_messages WHERE status = 'complete' AND processed = 0"
            " ORDER BY seq",
            (),
        )
        return [await self._load_inbound(self._r, r["id"]) for r in rows]

    async def list_inbound(self, *, limit: int, before_seq: int | None) -> list[InboundRecord]:
        """Complete and incomplete (shown) inbound messages, newest first."""
        rows = await self._all(
            "SELECT id FROM inbound_messages WHERE status IN ('complete','incomplete')"
            " AND seq < ? ORDER BY seq DESC LIMIT ?",
            (before_seq if before_seq is not None else 2**62, limit),
        )
        return [await self._load_inbound(self._r, r["id"]) for r in rows]

    @staticmethod
    async def _load_inbound(db: aiosqlite.Connection, inbound_id: str) -> InboundRecord:
        async with db.execute(
            "SELECT i.*, (SELECT COUNT(*) FROM inbound_parts q WHERE q.inbound_id = i.id) AS n"
            " FROM inbound_messages i WHERE i.id = ?",
            (inbound_id,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            raise WrongState(inbound_id, "missing")
        return rows_.inbound(row)

    # -- webhook outbox ----------------------------------------------------------------

    async def claim_webhooks(self, now: datetime, limit: int) -> list[WebhookDelivery]:
        """Due deliveries, leased so a crash mid-POST retries them later."""
        lease = datetime.fromtimestamp(
            now.timestamp() + events.WEBHOOK_LEASE_SECONDS, tz=now.tzinfo
        )
        async with self._tx() as tx:
            rows = await self._tx_all(
                tx,
                "UPDATE webhook_outbox SET next_at = ? WHERE seq IN (SELECT seq FROM"
                " webhook_outbox WHERE status = 'pending' AND next_at <= ? ORDER BY next_at, seq"
                " LIMIT ?) RETURNING id, url, event, payload, attempts",
                (to_db(lease), to_db(now), limit),
            )
        return [rows_.delivery(r) for r in rows]

    async def webhook_delivered(self, id: str, now: datetime) -> None:
        """The receiver answered 2xx."""
        async with self._tx() as tx:
            await tx.db.execute(
                "UPDATE webhook_outbox SET status = 'delivered', delivered_at = ?,"
                " attempts = attempts + 1 WHERE id = ?",
                (to_db(now), id),
            )

    async def webhook_retry(self, id: str, next_at: datetime, error: str) -> None:
        """Try again at ``next_at``."""
        async with self._tx() as tx:
            await tx.db.execute(
                "UPDATE webhook_outbox SET attempts = attempts + 1, next_at = ?, last_error = ?"
                " WHERE id = ?",
                (to_db(next_at), error, id),
            )

    async def webhook_gave_up(self, id: str, error: str) -> None:
        """No more attempts; kept for ``list_webhook_failures``."""
        async with self._tx() as tx:
            await tx.db.execute(
                "UPDATE webhook_outbox SET status = 'failed', attempts = attempts + 1,"
                " last_error = ? WHERE id = ?",
                (error, id),
            )

    async def list_webhook_failures(
        self, limit: int, cursor: str | None = None
    ) -> Page[WebhookFailure]:
        """Deliveries that gave up, newest first; ``cursor`` continues a page."""
        rows = await self._all(
            "SELECT * FROM webhook_outbox WHERE status = 'failed' AND seq < ?"
            " ORDER BY seq DESC LIMIT ?",
            (parse_cursor(cursor), limit),
        )
        items = [rows_.failure(r) for r in rows]
        return Page.of(items, limit)

    async def record_event(self, event: str, data: dict[str, Any], now: datetime) -> None:
        """Write one webhook event that belongs to no message (fleet alarms, missed calls)."""
        async with self._tx() as tx:
            await self._event(tx, event, data, now)

    async def pending_webhooks(self) -> list[WebhookDelivery]:
        """Every undelivered outbox row, oldest first (inspection and tests)."""
        rows = await self._all(
            "SELECT * FROM webhook_outbox WHERE status = 'pending' ORDER BY seq", ()
        )
        return [rows_.delivery(r) for r in rows]

    async def unmatched_reports(self) -> int:
        """How many reports matched no part."""
        row = await self._one("SELECT COUNT(*) AS n FROM unmatched_reports", ())
        return int(row["n"]) if row else 0


def _commit_group_sync(
    conn: sqlite3.Connection, tx: _Tx, groups: list[Sequence[NewMessage]]
) -> list[list[Inserted | Exception]]:
    """One group commit, run on the writer connection's thread (never on the loop).

    A savepoint per item: a refused or conflicting item is rolled back alone and its error
    is its result. Anything else rolls the whole transaction back and raises.
    """
    results: list[list[Inserted | Exception]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for items in groups:
            out: list[Inserted | Exception] = []
            for item in items:
                conn.execute("SAVEPOINT item")
                try:
                    out.append(_insert_one_sync(conn, tx, item))
                except (IdempotencyKeyReused, RecipientOptedOut, sqlite3.IntegrityError) as e:
                    conn.execute("ROLLBACK TO item")
                    out.append(e)
                conn.execute("RELEASE item")
            results.append(out)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        tx.depth_delta, tx.queued = 0, False
        raise
    return results


def _insert_one_sync(conn: sqlite3.Connection, tx: _Tx, item: NewMessage) -> Inserted:
    if item.idempotency_key is not None:
        row = conn.execute(
            "SELECT message_id, request_hash FROM idempotency_keys WHERE key = ?",
            (item.idempotency_key,),
        ).fetchone()
        if row is not None:
            if row["request_hash"] != item.request_hash:
                raise IdempotencyKeyReused(item.idempotency_key, row["message_id"])
            existing = _load_message_sync(conn, row["message_id"])
            if existing is not None:
                return Inserted(existing, duplicate=True)
    if not item.optout_exempt:
        # An erased customer's opt-out is kept under the hash of the number.
        opt = conn.execute(
            "SELECT scope FROM optouts WHERE number IN (?, ?) ORDER BY scope = 'all' DESC",
            (item.recipient, erased(item.recipient)),
        ).fetchone()
        if opt is not None and OptOutScope(opt["scope"]).covers(item.category):
            raise RecipientOptedOut(item.recipient, opt["scope"])
    now = to_db(item.created_at)
    cur = conn.execute(
        "INSERT INTO messages (id, recipient, recipient_digits, text, category, priority,"
        " status, encoding, segments, replaced_chars, send_at, expires_at, modem, pool,"
        " metadata, callback_url, force_ucs2, smart, optout_exempt, created_at, updated_at,"
        " next_attempt_at) VALUES (?,?,?,?,?,?,'queued',?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
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
            now,
            to_db(item.send_at),
        ),
    )
    seq = cur.lastrowid or 0
    conn.executemany(
        "INSERT INTO parts (message_id, seq, pdu, tpdu_length, status) VALUES (?,?,?,?,?)",
        [(item.id, p.seq, p.pdu, p.tpdu_length, "queued") for p in item.parts],
    )
    conn.execute(
        "INSERT INTO history (message_id, part_seq, status, at, detail) VALUES (?,?,?,?,?)",
        (item.id, None, MessageStatus.QUEUED, now, None),
    )
    if item.idempotency_key is not None:
        conn.execute(
            "INSERT INTO idempotency_keys (key, message_id, request_hash, created_at)"
            " VALUES (?,?,?,?)",
            (item.idempotency_key, item.id, item.request_hash or "", now),
        )
    tx.depth_delta += 1
    tx.queued = True
    # Built here rather than read back: no SELECT per submit.
    return Inserted(_new_record(item, seq), duplicate=False)


def _load_message_sync(conn: sqlite3.Connection, message_id: str) -> MessageRecord | None:
    row = conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
    if row is None:
        return None
    parts = conn.execute(
        "SELECT * FROM parts WHERE message_id = ? ORDER BY seq", (message_id,)
    ).fetchall()
    return rows_.message(row, (rows_.part(p) for p in parts))


def _first(rows: Iterable[sqlite3.Row]) -> sqlite3.Row | None:
    return next(iter(rows), None)


def _new_record(item: NewMessage, seq: int) -> MessageRecord:
    return MessageRecord(
        seq=seq,
        id=item.id,
        recipient=item.recipient,
        text=item.text,
        category=item.category,
        priority=item.priority,
        status=MessageStatus.QUEUED,
        encoding=item.encoding,
        segments=len(item.parts),
        replaced_chars=item.replaced_chars,
        send_at=item.send_at,
        expires_at=item.expires_at,
        modem=item.modem,
        pool=item.pool,
        metadata=item.metadata,
        callback_url=item.callback_url,
        force_ucs2=item.force_ucs2,
        smart=item.smart,
        optout_exempt=item.optout_exempt,
        created_at=item.created_at,
        updated_at=item.created_at,
        next_attempt_at=item.send_at,
        attempts=0,
        identity=None,
        bound_until=None,
        error_code=None,
        error_text=None,
        stray_part_possible=False,
        parts=tuple(
            PartRecord(
                seq=p.seq,
                pdu=p.pdu,
                tpdu_length=p.tpdu_length,
                status=PartStatus.QUEUED,
                identity=None,
                mr=None,
                attempts=0,
                error_code=None,
                error_text=None,
                sent_at=None,
                delivered_at=None,
                report_status=None,
            )
            for p in item.parts
        ),
    )
