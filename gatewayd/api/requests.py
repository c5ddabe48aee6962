"""Request bodies and query strings turned into typed values, or a :class:`FieldError`.

The core validates again (it is the authority on numbers, opt-outs and text length); this
layer rejects what is malformed as JSON input: wrong types, unknown fields, unparseable
times, numbers phonenumbers cannot read. Every error names the field, the way the client
wrote it (``messages[3].to`` inside a batch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import phonenumbers

from gatewayd.core import Category, MessageStatus, OptOutScope, Priority, SubmitRequest

E = TypeVar("E", bound=Enum)

_SUBMIT_FIELDS = frozenset(
    {
        "to",
        "text",
        "priority",
        "category",
        "send_at",
        "expires_at",
        "modem",
        "pool",
        "metadata",
        "callback_url",
        "force_ucs2",
        "smart",
    }
)
MAX_IDEMPOTENCY_KEY = 200
MAX_LIMIT = 500


class FieldError(Exception):
    """Input that cannot be used: ``field`` names it, ``reason`` says why (HTTP 422)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class SubmitContext:
    """What validating a submission needs from the daemon."""

    default_region: str
    modems: frozenset[str]
    pools: frozenset[str]
    now: datetime


def parse_submit(body: Any, ctx: SubmitContext, *, prefix: str = "") -> SubmitRequest:
    """A ``POST /v1/messages`` body as a :class:`SubmitRequest` (raises :class:`FieldError`)."""
    if not isinstance(body, Mapping):
        raise FieldError(prefix.rstrip(".") or "body", "expected a JSON object")
    for name in body:
        if name not in _SUBMIT_FIELDS:
            raise FieldError(f"{prefix}{name}", "unknown field")
    to = normalise_number(_required_str(body, "to", prefix), ctx.default_region, f"{prefix}to")
    text = _required_str(body, "text", prefix)
    category = _enum(body, "category", Category, prefix) or Category.TRANSACTIONAL
    priority = _enum(body, "priority", Priority, prefix)
    send_at = _time(body, "send_at", prefix)
    expires_at = _time(body, "expires_at", prefix)
    if expires_at is not None and expires_at <= ctx.now:
        raise FieldError(f"{prefix}expires_at", "is in the past")
    if send_at is not None and send_at < ctx.now:
        raise FieldError(f"{prefix}send_at", "is in the past")
    if send_at is not None and expires_at is not None and expires_at <= send_at:
        raise FieldError(f"{prefix}expires_at", "must be after send_at")
    modem = _optional_str(body, "modem", prefix)
    if modem is not None and modem not in ctx.modems:
        raise FieldError(f"{prefix}modem", f"no modem named {modem!r}")
    pool = _optional_str(body, "pool", prefix)
    if pool is not None and pool not in ctx.pools:
        raise FieldError(f"{prefix}pool", f"no pool named {pool!r}")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise FieldError(f"{prefix}metadata", "expected a JSON object")
    callback_url = _optional_str(body, "callback_url", prefix)
    if callback_url is not None and not callback_url.startswith(("http://", "https://")):
        raise FieldError(f"{prefix}callback_url", "expected an http:// or https:// URL")
    return SubmitRequest(
        to=to,
        text=text,
        priority=priority,
        category=category,
        send_at=send_at,
        expires_at=expires_at,
        modem=modem,
        pool=pool,
        metadata=dict(metadata) if metadata is not None else None,
        callback_url=callback_url,
        force_ucs2=_bool(body, "force_ucs2", prefix),
        smart=_bool(body, "smart", prefix),
    )


def normalise_number(value: str, region: str, field: str) -> str:
    """``value`` in E.164 (``+34600000012``); national numbers are read in ``region``."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise FieldError(field, f"not a phone number: {exc._msg}") from exc
    if not phonenumbers.is_valid_number(number):
        raise FieldError(field, "not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_idempotency_key(value: str | None) -> str | None:
    """The ``Idempotency-Key`` header: 1-200 printable ASCII characters."""
    if value is None:
        return None
    if not 0 < len(value) <= MAX_IDEMPOTENCY_KEY or not value.isprintable() or not value.isascii():
        raise FieldError("Idempotency-Key", f"expected 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII")
    return value


def parse_limit(query: Mapping[str, str], default: int = 50) -> int:
    """The ``limit`` query parameter, 1 to 500."""
    raw = query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise FieldError("limit", f"expected an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def parse_cursor(query: Mapping[str, str]) -> str | None:
    """The opaque ``cursor`` query parameter of a paged list."""
    raw = query.get("cursor")
    if raw is not None and not raw:
        raise FieldError("cursor", "must not be empty")
    return raw


def parse_status(query: Mapping[str, str]) -> MessageStatus | None:
    """The ``status`` filter of ``GET /v1/messages``."""
    raw = query.get("status")
    return None if raw is None else _enum_value(raw, MessageStatus, "status")


def parse_since(query: Mapping[str, str]) -> datetime | None:
    """The ``since`` filter: an ISO 8601 time with a timezone."""
    raw = query.get("since")
    return None if raw is None else _iso(raw, "since")


def parse_scope(body: Mapping[str, Any]) -> OptOutScope:
    """The ``scope`` of ``POST /v1/optouts`` (default ``all``)."""
    return _enum(body, "scope", OptOutScope, "") or OptOutScope.ALL


def _required_str(body: Mapping[str, Any], name: str, prefix: str) -> str:
    value = body.get(name)
    if value is None:
        raise FieldError(f"{prefix}{name}", "is required")
    if not isinstance(value, str):
        raise FieldError(f"{prefix}{name}", "expected a string")
    if not value.strip():
        raise FieldError(f"{prefix}{name}", "must not be empty")
    return value


def _optional_str(body: Mapping[str, Any], name: str, prefix: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise FieldError(f"{prefix}{name}", "expected a non-empty string")
    return value


def _bool(body: Mapping[str, Any], name: str, prefix: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise FieldError(f"{prefix}{name}", "expected true or false")
    return value


def _enum(body: Mapping[str, Any], name: str, enum: type[E], prefix: str) -> E | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise FieldError(f"{prefix}{name}", "expected a string")
    return _enum_value(value, enum, f"{prefix}{name}")


def _enum_value(value: str, enum: type[E], field: str) -> E:
    for member in enum:
        if member.value == value:
            return member
    allowed = ", ".join(str(m.value) for m in enum)
    raise FieldError(field, f"expected one of {allowed}")


def _time(body: Mapping[str, Any], name: str, prefix: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise FieldError(f"{prefix}{name}", "expected an ISO 8601 time string")
    return _iso(value, f"{prefix}{name}")


def _iso(value: str, field: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise FieldError(field, "expected an ISO 8601 time, e.g. 2026-01-05T09:00:00Z") from exc
    if when.tzinfo is None:
        raise FieldError(field, "must include a timezone (Z or +hh:mm)")
    return when
