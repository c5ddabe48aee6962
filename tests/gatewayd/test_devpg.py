"""gatewayd.devpg: a throwaway cluster starts, stops and restarts, and leaves nothing behind."""

from __future__ import annotations

import asyncpg
import pytest

from gatewayd import devpg
from tests.multinode.pgserver import require_postgres_binaries


def test_no_server_binaries_is_a_typed_error_that_names_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("gatewayd.devpg.glob.glob", lambda _pattern: [])
    monkeypatch.setattr("gatewayd.devpg.shutil.which", lambda _name: None)
    with pytest.raises(devpg.PostgresUnavailable, match="install Debian's postgresql"):
        devpg.find_bindir()


async def test_cluster_serves_stops_restarts_and_is_removed() -> None:
    require_postgres_binaries()
    async with devpg.throwaway_postgres() as server:
        root = server.root
        assert server.dsn.startswith("postgresql://postgres@127.0.0.1:")
        conn = await asyncpg.connect(server.dsn, timeout=10)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()
        await server.stop(devpg.StopMode.FAST)
        assert not server.running
        with pytest.raises(ConnectionRefusedError):
            await asyncpg.connect(server.dsn, timeout=10)
        await server.start()
        conn = await asyncpg.connect(server.dsn, timeout=10)
        assert await conn.fetchval("SHOW fsync") == "off"  # a throwaway cluster
        await conn.close()
    assert not root.exists()
