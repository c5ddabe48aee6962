"""A node follows the database's clock: its own may be off by minutes."""

from __future__ import annotations

import time

import pytest

from drivers.clock import OffsetClock
from gatewayd.store.postgres import PostgresStore


async def test_a_node_whose_clock_is_behind_reads_the_database_time(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = time.time
    monkeypatch.setattr("gatewayd.store.postgres.time.time", lambda: real() - 120.0)
    store = PostgresStore(dsn, node="behind")
    await store.open()
    try:
        clock = OffsetClock()
        store.on_clock_offset(clock.set_offset)
        # The database (this machine's real clock) is two minutes ahead of the node's.
        assert 119 < store.clock_offset < 121
        assert 119 < clock.offset.total_seconds() < 121
    finally:
        await store.close()
