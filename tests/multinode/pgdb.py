"""A fresh PostgreSQL schema per test on the server named by ``GATEWAYD_TEST_DSN``.

``scripts/test`` starts a throwaway server and sets the variable (scripts/lib/postgres.sh).
Without it the PostgreSQL tests skip, loudly, and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from tests.needs import missing

DSN_ENV = "GATEWAYD_TEST_DSN"


def base_dsn() -> str:
    """The test server's DSN; skips the test (fails it under ``CI=true``) when unset."""
    dsn = os.environ.get(DSN_ENV)
    if not dsn:
        why = f"{DSN_ENV} is not set: no PostgreSQL server for this test (see scripts/test)"
        missing(why)
    return dsn


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` with ``search_path`` set to ``schema`` (asyncpg passes it to the server)."""
    return f"{dsn}{'&' if '?' in dsn else '?'}search_path={schema}"


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """A DSN whose tables live in a new empty schema, dropped afterwards."""
    dsn = base_dsn()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        yield with_search_path(dsn, schema)
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
