"""A PostgreSQL server of a test's own, to stop and start under a running node.

The cluster is :class:`gatewayd.devpg.DevPostgres` (the demo's and the benchmarks' too).
Skips (fails under ``CI=true``) where no server binaries are installed.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from gatewayd.devpg import DevPostgres, PostgresUnavailable, find_bindir, throwaway_postgres

# The tests' name for a cluster of their own: start(), stop() (-m immediate), dsn.
Server = DevPostgres


@asynccontextmanager
async def own_server() -> AsyncIterator[Server]:
    """A fresh running server, removed afterwards."""
    try:
        find_bindir()
    except PostgresUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    async with throwaway_postgres() as server:
        yield server
