"""Times as the store keeps them: fixed-width UTC ISO 8601 text, so text order is time order."""

from __future__ import annotations

from datetime import UTC, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def to_db(moment: datetime) -> str:
    """``moment`` (timezone-aware) as stored text in UTC."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every stored time must be timezone-aware")
    return moment.astimezone(UTC).strftime(_FORMAT)


def from_db(text: str) -> datetime:
    """Stored text back to an aware UTC datetime."""
    return datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)


def opt_to_db(moment: datetime | None) -> str | None:
    """Like :func:`to_db`, passing ``None`` through."""
    return None if moment is None else to_db(moment)


def opt_from_db(text: str | None) -> datetime | None:
    """Like :func:`from_db`, passing ``None`` through."""
    return None if text is None else from_db(text)
