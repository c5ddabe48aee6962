from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from drivers.clock import ManualClock
from drivers.sim import SimNetwork


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def net(clock: ManualClock) -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=clock, seed=7, default_latency=(0.0, 0.0))
    yield network
    await network.close()
