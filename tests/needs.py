"""What a test does when a part it drives for real is not installed."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(reason: str) -> NoReturn:
    """Skip the test, but fail it under ``CI=true``: there ``scripts/test`` installs every
    part a test needs, so a missing one is a broken setup, never a quiet skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)
