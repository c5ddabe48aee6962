"""A PostgreSQL server of a test's own, to stop and start under a running node.

The cluster is :class:`gatewayd.devpg.DevPostgres` (the demo's and the benchmarks' too).
Skips (fails under ``CI=true``) where no server binaries are installed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gatewayd.devpg import DevPostgres, PostgresUnavailable, find_bindir, throwaway_postgres
from tests.needs import missing

# The tests' name for a cluster of their own: start(), stop() (-m immediate), dsn.
Server = DevPostgres


def require_postgres_binaries() -> None:
    """Skip (fail under ``CI=true``) unless PostgreSQL's server binaries are installed."""
    try:
        find_bindir()
    except PostgresUnavailable as exc:
        missing(str(exc))


@asynccontextmanager
async def own_server() -> AsyncIterator[Server]:
    """A fresh running server, removed afterwards."""
    require_postgres_binaries()
    async with throwaway_postgres() as server:
        yield server
