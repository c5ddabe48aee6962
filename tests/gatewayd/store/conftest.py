"""The ``store`` fixture: every test taking it runs against SQLite and against PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gatewayd.store import SqliteStore, Store
from gatewayd.store.postgres import PostgresStore
from tests.multinode.pgdb import fresh_schema

WEBHOOK_URL = "http://127.0.0.1:1/h"


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        s: Store = SqliteStore(str(tmp_path / "s.db"), webhook_url=WEBHOOK_URL)
        await s.open()
        yield s
        await s.close()
        return
    async with fresh_schema() as dsn:
        pg = PostgresStore(dsn, webhook_url=WEBHOOK_URL, node="test")
        await pg.open()
        yield pg
        await pg.close()
