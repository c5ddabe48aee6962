"""Turning a submit request into a validated, encoded message ready for the store."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from datetime import datetime, timedelta
from typing import Any

import phonenumbers

from drivers.pdu import PduError, encode_submit, segments
from gatewayd.config.model import GatewayConfig
from gatewayd.core.errors import ValidationError
from gatewayd.core.routing import pool_for
from gatewayd.core.views import SubmitRequest
from gatewayd.store import Category, NewMessage, NewPart, Priority, new_id


def normalise_number(raw: str, region: str, *, field: str = "to") -> str:
    """``raw`` as E.164 (national numbers read in ``region``); ValidationError otherwise."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError(field, "a phone number is required")
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(field, f"not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationError(field, f"{raw!r} is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def request_hash(req: SubmitRequest) -> str:
    """A digest of everything the request asks for (idempotency: same key, same body)."""
    body = {
        "to": req.to,
        "text": req.text,
        "priority": req.priority.value if req.priority else None,
        "category": req.category.value,
        "send_at": req.send_at.isoformat() if req.send_at else None,
        "expires_at": req.expires_at.isoformat() if req.expires_at else None,
        "modem": req.modem,
        "pool": req.pool,
        "metadata": dict(req.metadata) if req.metadata is not None else None,
        "callback_url": req.callback_url,
        "force_ucs2": req.force_ucs2,
        "smart": req.smart,
    }
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canon.encode()).hexdigest()


def encode_parts(
    config: GatewayConfig,
    to: str,
    text: str,
    *,
    force_ucs2: bool,
    smart: bool,
    concat_ref: int | None = None,
    validity_minutes: int | None = None,
) -> list[tuple[str, int]]:
    """The PDUs (hex with the "00" SMSC prefix) and TPDU lengths of ``text`` to ``to``.

    ``validity_minutes`` (from a message's ``expires_at``) shortens the configured validity
    period, so the network drops an otp it could not deliver in time.
    """
    vp = config.sending.validity_minutes
    if validity_minutes is not None:
        vp = validity_minutes if vp is None else min(vp, validity_minutes)
    parts = encode_submit(
        to,
        text,
        srr=config.sending.request_status_report,
        vp_minutes=vp,
        force_ucs2=force_ucs2,
        smart=smart,
        concat_ref=concat_ref,
    )
    return [(p.hex(with_smsc=True), p.length) for p in parts]


def prepare(
    req: SubmitRequest,
    config: GatewayConfig,
    now: datetime,
    *,
    modems: AbstractSet[str],
    pools: AbstractSet[str],
    idempotency_key: str | None = None,
    max_parts: int | None = None,
    optout_exempt: bool = False,
) -> NewMessage:
    """Validate and encode ``req``: ``modems`` and ``pools`` are the names it may route to,
    ``max_parts`` the most any modem's limits can take."""
    to = normalise_number(req.to, config.sending.default_region)
    if not isinstance(req.text, str) or req.text == "":
        raise ValidationError("text", "must not be empty")
    category = _enum(Category, req.category, "category")
    if category.urgent:
        priority = Priority.URGENT  # ahead of everything, whatever the request says
    elif req.priority is not None:
        priority = _enum(Priority, req.priority, "priority")
    else:
        priority = Priority.HIGH if category is Category.TRANSACTIONAL else Priority.NORMAL
    send_at = _aware(req.send_at, "send_at") or now
    expires_at = _aware(req.expires_at, "expires_at")
    if expires_at is None and category is Category.OTP:
        expires_at = send_at + timedelta(seconds=config.sending.otp_validity_seconds)
    if expires_at is not None and expires_at <= max(now, send_at):
        raise ValidationError("expires_at", "must be after now and after send_at")
    if req.modem is not None and req.modem not in modems:
        raise ValidationError("modem", f"no modem named {req.modem!r}")
    if req.pool is not None and req.pool not in pools:
        raise ValidationError("pool", f"no pool named {req.pool!r}")
    if req.callback_url is not None and not req.callback_url.startswith(("http://", "https://")):
        raise ValidationError("callback_url", "must be an http(s) URL")
    metadata = _metadata(req.metadata)
    try:
        info = segments(req.text, force_ucs2=req.force_ucs2, smart=req.smart)
        encoded = encode_parts(
            config,
            to,
            req.text,
            force_ucs2=req.force_ucs2,
            smart=req.smart,
            validity_minutes=validity_minutes(send_at, expires_at),
        )
    except (PduError, ValueError) as exc:
        raise ValidationError("text", f"cannot be encoded: {exc}") from exc
    if len(encoded) > config.sending.max_segments:
        raise ValidationError(
            "text",
            f"needs {len(encoded)} parts, more than max_segments={config.sending.max_segments}",
        )
    if max_parts is not None and len(encoded) > max_parts:
        raise ValidationError(
            "text", f"needs {len(encoded)} parts, more than any modem's limits allow at once"
        )
    pool = (
        req.pool if req.pool is not None or req.modem is not None else pool_for(to, config.routing)
    )
    return NewMessage(
        id=new_id(),
        recipient=to,
        text=req.text,
        category=category,
        priority=priority,
        encoding=info.encoding.value,
        parts=tuple(NewPart(n, pdu, length) for n, (pdu, length) in enumerate(encoded, 1)),
        replaced_chars=info.replaced_chars,
        send_at=send_at,
        expires_at=expires_at,
        modem=req.modem,
        pool=pool,
        metadata=metadata,
        callback_url=req.callback_url,
        force_ucs2=req.force_ucs2,
        smart=req.smart,
        created_at=now,
        idempotency_key=idempotency_key,
        request_hash=request_hash(req) if idempotency_key is not None else None,
        optout_exempt=optout_exempt,
    )


def validity_minutes(send_at: datetime, expires_at: datetime | None) -> int | None:
    """Whole minutes (rounded up) from ``send_at`` to ``expires_at``; None without expiry."""
    if expires_at is None:
        return None
    return max(1, math.ceil((expires_at - send_at).total_seconds() / 60.0))


def _enum(kind: type[Category] | type[Priority], value: Any, field: str) -> Any:
    try:
        return kind(value)
    except ValueError as exc:
        allowed = ", ".join(k.value for k in kind)
        raise ValidationError(field, f"must be one of {allowed}") from exc


def _aware(moment: datetime | None, field: str) -> datetime | None:
    if moment is None:
        return None
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValidationError(field, "must be a timezone-aware time")
    return moment


def _metadata(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        out = dict(value)
        json.dumps(out)
    except (TypeError, ValueError) as exc:
        raise ValidationError("metadata", f"must be a JSON object: {exc}") from exc
    return out
