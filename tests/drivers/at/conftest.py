from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.drivers.at.fakes import FakeModem


@pytest.fixture
async def fake() -> AsyncIterator[FakeModem]:
    modem = FakeModem()
    yield modem
    await modem.close()
