from collections.abc import AsyncIterator

import pytest

from drivers.clock import ManualClock
from tests.gatewayd.flows import harness
from tests.multinode.pgdb import fresh_schema


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test of a module that starts the flows harness runs on SQLite and on
    # PostgreSQL (the store's behaviour); the others (parsing, timing) run once.
    if "database" in metafunc.fixturenames and hasattr(metafunc.module, "start_flows"):
        metafunc.parametrize("database", ["sqlite", "postgres"], indirect=True)


@pytest.fixture(autouse=True)
async def database(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The database start_flows opens: SQLite in tmp_path, or a fresh PostgreSQL schema."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield "sqlite"
        return
    async with fresh_schema() as dsn:
        harness.DATABASE = dsn
        try:
            yield dsn
        finally:
            harness.DATABASE = None
