"""Opaque ids for stored rows, made by the daemon (any store accepts them)."""

from __future__ import annotations

import uuid


def new_id() -> str:
    """A fresh opaque id (32 hex digits)."""
    return uuid.uuid4().hex
