"""Fill a gatewayd SQLite file with a queued backlog fast: one ``executemany`` transaction.

The schema is the store's own (``SqliteStore.open`` runs the migrations first); rows are
what :meth:`SqliteStore.insert_messages` writes for a 1-part message (message, part,
``queued`` history row), without HTTP, validation or group commit in the way.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drivers.pdu import encode_submit
from gatewayd.store.sqlite import SqliteStore
from gatewayd.store.timefmt import to_db

TEXT = "Tu pedido 1042 ya ha salido. Sigue el envio en https://example.com/t/AbC123"
RECIPIENTS = 1000  # distinct numbers, reused round-robin: encoding 1M PDUs would take minutes
CHUNK = 50_000


def recipient(i: int) -> str:
    """The ``i``-th benchmark recipient (Spanish mobile numbers)."""
    return f"+3469{i % RECIPIENTS:07d}"


async def prepare_schema(path: Path) -> None:
    """Create the database file with the store's current schema."""
    store = SqliteStore(str(path))
    await store.open()
    await store.close()


def prefill(path: Path, count: int, *, now: datetime | None = None) -> float:
    """Insert ``count`` queued 1-part messages (oldest first); returns seconds taken."""
    start = datetime.now(UTC)
    base = (now or start) - timedelta(seconds=count // 1000 + 10)
    pdus = [encode_submit(recipient(i), TEXT)[0] for i in range(min(count, RECIPIENTS))]
    encoded = [(p.hex(), p.length) for p in pdus]
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a benchmark fixture, not a 202
        db.execute("BEGIN IMMEDIATE")
        for lo in range(0, count, CHUNK):
            rows = list(_rows(range(lo, min(lo + CHUNK, count)), base, encoded))
            db.executemany(
                "INSERT INTO messages (id, recipient, recipient_digits, text, category,"
                " priority, status, encoding, segments, replaced_chars, send_at, created_at,"
                " updated_at, next_attempt_at, force_ucs2, smart)"
                " VALUES (?,?,?,?,'transactional',1,'queued','gsm7',1,'[]',?,?,?,?,0,0)",
                [r[0] for r in rows],
            )
            db.executemany(
                "INSERT INTO parts (message_id, seq, pdu, tpdu_length, status)"
                " VALUES (?,1,?,?,'queued')",
                [r[1] for r in rows],
            )
            db.executemany(
                "INSERT INTO history (message_id, part_seq, status, at) VALUES (?,NULL,'queued',?)",
                [r[2] for r in rows],
            )
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return (datetime.now(UTC) - start).total_seconds()


Row = tuple[tuple[object, ...], tuple[object, ...], tuple[object, ...]]


def _rows(indexes: range, base: datetime, pdus: list[tuple[str, int]]) -> Iterator[Row]:
    for i in indexes:
        mid = uuid.uuid4().hex
        at = to_db(base + timedelta(microseconds=1000 * i))
        to = recipient(i)
        pdu, length = pdus[i % len(pdus)]
        yield (
            (mid, to, to[1:], TEXT, at, at, at, at),
            (mid, pdu, length),
            (mid, at),
        )
