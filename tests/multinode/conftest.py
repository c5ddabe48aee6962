from collections.abc import AsyncIterator

import pytest

from drivers.clock import ManualClock
from tests.multinode.pgdb import fresh_schema


@pytest.fixture
async def dsn() -> AsyncIterator[str]:
    """One database (a fresh schema) that every node of a test shares."""
    async with fresh_schema() as url:
        yield url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
