"""Run one synchronous function on an aiosqlite connection's own thread.

aiosqlite awaits every statement as a separate hop to its thread (queue put, thread wake-up,
``call_soon_threadsafe``, loop wake-up): about 0.1 ms each here, which made the writer
latency-bound (docs/benchmarks.md). A transaction run as one function is one hop.

aiosqlite has no public API for this. ``Connection._execute(fn)`` (queue ``fn`` on the
connection's thread, await its result) and ``Connection._conn`` (the ``sqlite3.Connection``)
are private; they are used only here, and ``tests/gatewayd/store/test_conn_thread.py`` fails
loudly if an aiosqlite upgrade changes them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

import aiosqlite

T = TypeVar("T")


async def run_on_connection_thread(
    db: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]
) -> T:
    """Call ``fn(conn)`` on ``db``'s thread with its ``sqlite3.Connection``; its result.

    ``fn`` runs between the connection's other queued calls, never beside them, so it may
    run a whole transaction. It must not touch the event loop.
    """
    conn: sqlite3.Connection = db._conn  # private: see the module docstring
    result: T = await db._execute(fn, conn)  # type: ignore[no-untyped-call]
    return result
