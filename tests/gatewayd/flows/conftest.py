import pytest

from drivers.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
