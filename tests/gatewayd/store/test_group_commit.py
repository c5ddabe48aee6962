"""SQLite group commit: one call on the writer's thread per group, every guarantee kept."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import aiosqlite
import pytest

from gatewayd.store import IdempotencyKeyReused, Inserted, SqliteStore
from gatewayd.store.conn_thread import run_on_connection_thread
from tests.gatewayd.store.test_store import message


async def test_a_function_runs_on_the_connections_own_thread_and_connection(
    tmp_path: Path,
) -> None:
    # Fails loudly if an aiosqlite upgrade changes the private API the helper relies on.
    async with aiosqlite.connect(str(tmp_path / "c.db"), isolation_level=None) as db:
        await db.execute("CREATE TABLE t (x INTEGER)")

        def work(conn: sqlite3.Connection) -> tuple[int, int]:
            conn.execute("INSERT INTO t VALUES (7)")
            row = conn.execute("SELECT x FROM t").fetchone()
            return threading.get_ident(), int(row[0])

        thread, x = await asyncio.wait_for(run_on_connection_thread(db, work), 5)
        assert (thread != threading.get_ident(), x) == (True, 7)
        assert list(await db.execute_fetchall("SELECT x FROM t")) == [(7,)]

        def boom(conn: sqlite3.Connection) -> None:
            conn.execute("SELECT * FROM missing")

        with pytest.raises(sqlite3.OperationalError, match="missing"):
            await asyncio.wait_for(run_on_connection_thread(db, boom), 5)


async def test_one_group_commits_the_good_items_and_refuses_the_bad_alone(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "s.db")
    store = SqliteStore(path)
    await store.open()
    woken = asyncio.Event()
    store.on_queued(woken.set)
    try:
        # Submitted in the same loop turn, so they share one transaction.
        results = await asyncio.wait_for(
            asyncio.gather(
                store.insert_messages([message("a", parts=2), message("a")]),
                store.insert_messages([message("k1", key="k"), message("k2", key="k")]),
                store.insert_messages([message("k3", key="k", body="other")]),
            ),
            5,
        )
        [[a, dup_id], [k1, k2], [reused]] = results
        assert store.max_group == 5
        assert isinstance(a, Inserted)
        assert a.message.seq > 0
        assert len(a.message.parts) == 2
        assert isinstance(dup_id, sqlite3.IntegrityError)
        assert isinstance(k1, Inserted)
        assert isinstance(k2, Inserted)
        assert (k2.duplicate, k2.message.id, k2.message.seq) == (True, "k1", k1.message.seq)
        assert isinstance(reused, IdempotencyKeyReused)
        assert store.queue_depth() == 2
        assert woken.is_set()
        # Durable before the answer: another connection sees the rows at once.
        other = sqlite3.connect(path)
        try:
            rows = other.execute(
                "SELECT m.id, COUNT(DISTINCT p.seq), COUNT(DISTINCT h.seq) FROM messages m"
                " JOIN parts p ON p.message_id = m.id JOIN history h ON h.message_id = m.id"
                " GROUP BY m.id ORDER BY m.id"
            ).fetchall()
        finally:
            other.close()
        assert rows == [("a", 2, 1), ("k1", 1, 1)]
    finally:
        await store.close()
