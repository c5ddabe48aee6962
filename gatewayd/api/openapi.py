"""The OpenAPI 3.1 document of the API, served at ``/v1/openapi.json``.

``tests/gatewayd/api/test_openapi.py`` validates real responses (status codes and bodies)
against it, so it stays true to the code.
"""

from __future__ import annotations

from typing import Any

from gatewayd import __version__
from gatewayd.core import Category, MessageStatus, PartStatus, Priority


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _error(description: str) -> dict[str, Any]:
    return _json("Error", description)


def _obj(
    properties: dict[str, Any], required: tuple[str, ...] = (), *, closed: bool = False
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def _page(item: str) -> dict[str, Any]:
    return _obj(
        {
            "items": {"type": "array", "items": _ref(item)},
            "next_cursor": {"type": ["string", "null"]},
        },
        ("items", "next_cursor"),
    )


STR: dict[str, Any] = {"type": "string"}
NSTR: dict[str, Any] = {"type": ["string", "null"]}
TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
NTIME: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
INT: dict[str, Any] = {"type": "integer"}
NINT: dict[str, Any] = {"type": ["integer", "null"]}
E164: dict[str, Any] = {"type": "string", "pattern": r"^\+[1-9][0-9]{6,14}$"}

MESSAGE_STATUSES = [s.value for s in MessageStatus]
PART_STATUSES = [s.value for s in PartStatus]
PRIORITIES = [p.value for p in Priority]
CATEGORIES = [c.value for c in Category]
ENCODING: dict[str, Any] = {"enum": ["gsm7", "ucs2"]}
REPLACED: dict[str, Any] = {
    "type": "array",
    "description": "characters folded to fit GSM 7-bit: [original, replacement]",
    "items": {"type": "array", "items": STR, "minItems": 2, "maxItems": 2},
}

_LIMIT = {
    "name": "limit",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
}
_CURSOR = {"name": "cursor", "in": "query", "schema": STR, "description": "next_cursor of a page"}
_AUTH_ERRORS = {"401": _error("Missing or wrong bearer token")}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": {**responses, **_AUTH_ERRORS}, **extra}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": STR, "description": description}


SCHEMAS: dict[str, Any] = {
    "Error": _obj(
        {
            "error": _obj(
                {
                    "code": STR,
                    "message": STR,
                    "field": STR,
                    "reasons": {"type": "array", "items": STR},
                },
                ("code", "message"),
                closed=True,
            )
        },
        ("error",),
        closed=True,
    ),
    "SubmitRequest": _obj(
        {
            "to": {**STR, "description": "E.164, or national in sending.default_region"},
            "text": {**STR, "minLength": 1},
            "priority": {"enum": PRIORITIES},
            "category": {
                "enum": CATEGORIES,
                "description": "otp/alert: never deferred, highest priority, a reserved share"
                " of each SIM's limits, text redacted once final; an otp expires after"
                " sending.otp_validity_seconds unless expires_at says otherwise",
            },
            "send_at": TIME,
            "expires_at": TIME,
            "modem": STR,
            "pool": STR,
            "metadata": {"type": "object"},
            "callback_url": {**STR, "format": "uri"},
            "force_ucs2": {"type": "boolean"},
            "smart": {"type": "boolean", "description": "fold accents to stay in GSM 7-bit"},
        },
        ("to", "text"),
        closed=True,
    ),
    "SubmitResult": _obj(
        {
            "id": STR,
            "status": {"enum": MESSAGE_STATUSES},
            "encoding": ENCODING,
            "segments": {"type": "integer", "minimum": 1},
            "replaced_chars": REPLACED,
            "duplicate": {
                "type": "boolean",
                "description": "true when an Idempotency-Key replay returned a stored message",
            },
        },
        ("id", "status", "encoding", "segments", "replaced_chars", "duplicate"),
        closed=True,
    ),
    "BatchRequest": _obj(
        {"messages": {"type": "array", "items": _ref("SubmitRequest"), "minItems": 1}},
        ("messages",),
        closed=True,
    ),
    "BatchResult": _obj(
        {
            "accepted": INT,
            "rejected": INT,
            "results": {
                "type": "array",
                "items": {
                    "oneOf": [
                        _obj(
                            {
                                "index": INT,
                                "status": {"const": 202},
                                "message": _ref("SubmitResult"),
                            },
                            ("index", "status", "message"),
                            closed=True,
                        ),
                        _obj(
                            {
                                "index": INT,
                                "status": {"type": "integer", "minimum": 400},
                                "error": {"$ref": "#/components/schemas/Error/properties/error"},
                            },
                            ("index", "status", "error"),
                            closed=True,
                        ),
                    ]
                },
            },
        },
        ("accepted", "rejected", "results"),
        closed=True,
    ),
    "Part": _obj(
        {
            "index": INT,
            "status": {"enum": PART_STATUSES},
            "sim": {**NSTR, "description": "ICCID (else IMEI) of the SIM that sent it"},
            "mr": NINT,
            "attempts": INT,
            "error_code": NSTR,
            "error_text": NSTR,
            "sent_at": NTIME,
            "delivered_at": NTIME,
        },
        (
            "index",
            "status",
            "sim",
            "mr",
            "attempts",
            "error_code",
            "error_text",
            "sent_at",
            "delivered_at",
        ),
        closed=True,
    ),
    "HistoryEntry": _obj(
        {"at": TIME, "status": STR, "part": NINT, "detail": NSTR},
        ("at", "status", "part", "detail"),
        closed=True,
    ),
    "Message": _obj(
        {
            "id": STR,
            "to": E164,
            "text": {**STR, "description": "empty once an otp/alert is final (text_redacted)"},
            "text_redacted": {"type": "boolean"},
            "category": {"enum": CATEGORIES},
            "priority": {"enum": PRIORITIES},
            "status": {"enum": MESSAGE_STATUSES},
            "encoding": ENCODING,
            "segments": INT,
            "replaced_chars": REPLACED,
            "send_at": TIME,
            "expires_at": NTIME,
            "modem": NSTR,
            "pool": NSTR,
            "sim": NSTR,
            "metadata": {"type": ["object", "null"]},
            "callback_url": NSTR,
            "created_at": TIME,
            "updated_at": TIME,
            "attempts": INT,
            "error_code": NSTR,
            "error_text": NSTR,
            "stray_part_possible": {"type": "boolean"},
            "parts": {"type": "array", "items": _ref("Part")},
            "history": {"type": "array", "items": _ref("HistoryEntry")},
        },
        (
            "id",
            "to",
            "text",
            "category",
            "priority",
            "status",
            "encoding",
            "segments",
            "replaced_chars",
            "send_at",
            "expires_at",
            "modem",
            "pool",
            "sim",
            "metadata",
            "callback_url",
            "created_at",
            "updated_at",
            "attempts",
            "error_code",
            "error_text",
            "stray_part_possible",
            "parts",
            "history",
        ),
        closed=True,
    ),
    "MessagePage": _page("Message"),
    "Inbound": _obj(
        {
            "id": STR,
            "from": STR,
            "text": STR,
            "modem": STR,
            "sim": STR,
            "incomplete": {"type": "boolean"},
            "parts_received": INT,
            "parts_total": INT,
            "received_at": TIME,
        },
        (
            "id",
            "from",
            "text",
            "modem",
            "sim",
            "incomplete",
            "parts_received",
            "parts_total",
            "received_at",
        ),
        closed=True,
    ),
    "InboundPage": _page("Inbound"),
    "OptOutRequest": _obj(
        {"number": STR, "scope": {"enum": ["all", "marketing"]}}, ("number",), closed=True
    ),
    "OptOut": _obj(
        {
            "number": E164,
            "scope": {"enum": ["all", "marketing"]},
            "source": STR,
            "created_at": TIME,
        },
        ("number", "scope", "source", "created_at"),
        closed=True,
    ),
    "OptOutPage": _page("OptOut"),
    "Modem": _obj(
        {
            "name": STR,
            "state": STR,
            "state_reason": STR,
            "sim": NSTR,
            "pool": STR,
            "paused": {"type": "boolean"},
            "out_of_service": {"type": "boolean"},
            "signal_dbm": NINT,
            "operator": NSTR,
            "registration": STR,
            "counters": _obj({"sent": INT, "failed": INT}, ("sent", "failed"), closed=True),
            "headroom": _obj(
                {"minute": NINT, "hour": NINT, "day": NINT}, ("minute", "hour", "day"), closed=True
            ),
            "queue_depth": INT,
            # Present when the fleet is running (gatewayd.fleet): the SIM, not the port.
            "port": NSTR,
            "imei": NSTR,
            "iccid": NSTR,
            "imsi": NSTR,
            "technology": {"type": ["string", "null"], "enum": ["2G", "3G", "4G", None]},
            "storage": _obj({"used": NINT, "total": NINT}, ("used", "total"), closed=True),
            "limits": _obj(
                {"minute": NINT, "hour": NINT, "day": NINT}, ("minute", "hour", "day"), closed=True
            ),
            "sent_today": NINT,
            "sent_this_month": NINT,
            "monthly_quota": NINT,
            "alarms": {"type": "array", "items": STR},
            "credit": {
                "type": ["object", "null"],
                "properties": {
                    "balance": {"type": "number"},
                    "checked_at": TIME,
                    "below_floor": {"type": "boolean"},
                },
            },
        },
        (
            "name",
            "state",
            "state_reason",
            "sim",
            "pool",
            "paused",
            "out_of_service",
            "signal_dbm",
            "operator",
            "registration",
            "counters",
            "headroom",
            "queue_depth",
        ),
        closed=True,
    ),
    "ModemList": _obj(
        {"modems": {"type": "array", "items": _ref("Modem")}}, ("modems",), closed=True
    ),
    "WebhookFailure": _obj(
        {
            "id": STR,
            "url": STR,
            "event": STR,
            "payload": {"type": "object", "description": "the event as it was to be posted"},
            "attempts": INT,
            "last_error": NSTR,
            "created_at": TIME,
        },
        ("id", "url", "event", "payload", "attempts", "last_error", "created_at"),
        closed=True,
    ),
    "WebhookFailurePage": _page("WebhookFailure"),
    "Health": _obj({"status": {"enum": ["ok"]}}, ("status",), closed=True),
    "Ready": _obj({"status": {"enum": ["ready"]}}, ("status",), closed=True),
}

_MESSAGE_ID = _path_param("id", "message id")
_MODEM_ID = _path_param("id", "modem name")

PATHS: dict[str, Any] = {
    "/v1/messages": {
        "post": _op(
            "Queue a message",
            {
                "202": _json("SubmitResult", "Accepted and stored"),
                "400": _error("Malformed JSON"),
                "409": _error("The number opted out (code opted_out)"),
                "413": _error("Body too large"),
                "422": _error(
                    "Invalid field (error.field names it); an Idempotency-Key reused with"
                    " another body (code idempotency_conflict)"
                ),
                "503": _error("Shutting down"),
            },
            requestBody=_body("SubmitRequest"),
            parameters=[
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "schema": {**STR, "maxLength": 200},
                    "description": "the same key returns the same message",
                }
            ],
        ),
        "get": _op(
            "List messages, newest first",
            {"200": _json("MessagePage", "A page"), "422": _error("Bad filter")},
            parameters=[
                {"name": "status", "in": "query", "schema": {"enum": MESSAGE_STATUSES}},
                {"name": "to", "in": "query", "schema": STR},
                {"name": "since", "in": "query", "schema": TIME},
                _LIMIT,
                _CURSOR,
            ],
        ),
    },
    "/v1/messages/batch": {
        "post": _op(
            "Queue many messages; one result per item, in order",
            {
                "200": _json("BatchResult", "Per-item results"),
                "400": _error("Malformed JSON"),
                "413": _error("Body too large"),
                "422": _error("Not a batch"),
                "503": _error("Shutting down"),
            },
            requestBody=_body("BatchRequest"),
        )
    },
    "/v1/messages/{id}": {
        "parameters": [_MESSAGE_ID],
        "get": _op(
            "A message with parts, modem, history and delivery status",
            {"200": _json("Message", "The message"), "404": _error("No such message")},
        ),
        "delete": _op(
            "Cancel a message not yet sent",
            {
                "200": _json("Message", "Cancelled"),
                "404": _error("No such message"),
                "409": _error("Already sent (code not_cancellable)"),
            },
        ),
    },
    "/v1/inbound": {
        "get": _op(
            "Received messages, newest first",
            {"200": _json("InboundPage", "A page"), "422": _error("Bad paging")},
            parameters=[_LIMIT, _CURSOR],
        )
    },
    "/v1/optouts": {
        "get": _op(
            "The opt-out list",
            {"200": _json("OptOutPage", "A page"), "422": _error("Bad paging")},
            parameters=[_LIMIT, _CURSOR],
        ),
        "post": _op(
            "Opt a number out (cancels its queued messages in scope)",
            {
                "201": _json("OptOut", "Recorded"),
                "400": _error("Malformed JSON"),
                "422": _error("Invalid number or scope"),
            },
            requestBody=_body("OptOutRequest"),
        ),
    },
    "/v1/optouts/{number}": {
        "delete": _op(
            "Remove an opt-out",
            {"204": {"description": "Removed"}, "404": _error("Not on the list")},
            parameters=[_path_param("number", "E.164, '+' written as %2B")],
        )
    },
    "/v1/modems": {"get": _op("Modems and their state", {"200": _json("ModemList", "Modems")})},
    "/v1/modems/{id}/pause": {
        "parameters": [_MODEM_ID],
        "post": _op(
            "Stop sending from a modem",
            {"200": _json("Modem", "Paused"), "404": _error("No such modem")},
        ),
    },
    "/v1/modems/{id}/resume": {
        "parameters": [_MODEM_ID],
        "post": _op(
            "Resume sending from a modem",
            {"200": _json("Modem", "Resumed"), "404": _error("No such modem")},
        ),
    },
    "/v1/webhooks/failures": {
        "get": _op(
            "Webhook deliveries that gave up",
            {"200": _json("WebhookFailurePage", "A page"), "422": _error("Bad paging")},
            parameters=[_LIMIT, _CURSOR],
        )
    },
    "/v1/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1"}},
        }
    },
    "/healthz": {
        "get": {
            "summary": "The process is alive",
            "security": [],
            "responses": {"200": _json("Health", "Alive")},
        }
    },
    "/readyz": {
        "get": {
            "summary": "The store is writable and at least one modem is ready",
            "security": [],
            "responses": {
                "200": _json("Ready", "Ready"),
                "503": _error("Not ready (error.reasons lists why)"),
            },
        }
    },
}

# -- flows and customers: served when [flows] is configured ("x-requires": "flows") --------

_FLOWS = {"x-requires": "flows"}
_CUSTOMER = [_path_param("id", "the shop's customer id")]
_KINDS = ["transactional", "shipping", "reviews", "loyalty", "replenishment", "marketing"]
_RATE = {"type": ["number", "null"]}
_INTERVAL = {"type": ["array", "null"], "items": {"type": "number"}}

SCHEMAS.update(
    {
        "Event": _obj(
            {
                "type": {**STR, "description": "e.g. order.placed, order.shipped"},
                "event_id": {**STR, "description": "makes the call idempotent"},
                "occurred_at": TIME,
                "customer": {"type": "object"},
                "order": {"type": "object"},
                "data": {"type": "object"},
            },
            ("type", "event_id"),
        ),
        "EventOutcome": _obj(
            {
                "event_id": STR,
                "duplicate": {"type": "boolean"},
                "enrolled": {"type": "array", "items": STR},
                "exited": INT,
                "resumed": INT,
            },
            ("event_id", "duplicate", "enrolled", "exited", "resumed"),
            closed=True,
        ),
        "StepMetrics": _obj(
            {
                "step": STR,
                "sent": INT,
                "skipped": INT,
                "delivered": INT,
                "failed": INT,
                "clicked": INT,
                "replied": INT,
                "opted_out": INT,
                "converted": INT,
                "answered": INT,
                "revenue": {**STR, "description": "sum of order.total of converting orders"},
                "rates": {"type": "object", "additionalProperties": _RATE},
                "control": {**STR, "description": "the arm the others compare with"},
                "variants": {"type": "array", "items": _ref("ArmMetrics")},
            },
            ("step", "sent", "skipped", "rates"),
        ),
        "ArmMetrics": _obj(
            {
                "variant": {**STR, "description": "a template, or holdout"},
                "n": INT,
                "sent": INT,
                "revenue": STR,
                "rates": {"type": "object", "additionalProperties": _RATE},
                "ci95": {"type": "object", "additionalProperties": _INTERVAL},
                "vs_control": {
                    "type": "object",
                    "description": "per metric: diff, ci95, z, p_value (two-proportion z-test)",
                },
            },
            ("variant", "n", "sent", "rates", "ci95"),
        ),
        "FlowMetrics": _obj(
            {
                "since": TIME,
                "flows": {
                    "type": "array",
                    "items": _obj(
                        {
                            "flow": STR,
                            "enrolled": INT,
                            "sent": INT,
                            "steps": {"type": "array", "items": _ref("StepMetrics")},
                        },
                        ("flow", "enrolled", "sent", "steps"),
                    ),
                },
            },
            ("since", "flows"),
            closed=True,
        ),
        "Preferences": _obj(
            {
                "customer_id": STR,
                "kinds": {"type": "array", "items": {"enum": _KINDS}},
                "frequency": {"enum": ["normal", "reduced", "essential"]},
            },
            ("customer_id", "kinds", "frequency"),
            closed=True,
        ),
        "PreferencesUpdate": _obj(
            {
                "kinds": {"type": "array", "items": {"enum": _KINDS}},
                "frequency": {"enum": ["normal", "reduced", "essential"]},
            },
            closed=True,
        ),
        "Timeline": _obj(
            {
                "customer_id": STR,
                "entries": {
                    "type": "array",
                    "items": _obj(
                        {
                            "at": TIME,
                            "what": STR,
                            "reason": NSTR,
                            "flow": NSTR,
                            "step": NSTR,
                            "kind": NSTR,
                            "message_id": NSTR,
                            "detail": {"type": "object"},
                        },
                        ("at", "what", "reason", "flow", "step", "kind", "message_id", "detail"),
                        closed=True,
                    ),
                },
            },
            ("customer_id", "entries"),
            closed=True,
        ),
        "CustomerExport": _obj(
            {
                "customer_id": STR,
                **{
                    name: {"type": "array", "items": {"type": "object"}}
                    for name in (
                        "optouts",
                        "orders",
                        "events",
                        "enrolments",
                        "messages",
                        "inbound",
                        "clicks",
                        "survey_answers",
                        "timeline",
                    )
                },
                "profile": {"type": "object"},
                "consents": {"type": "object"},
                "preferences": {"type": ["object", "null"]},
            },
            ("customer_id", "profile", "consents", "messages", "inbound", "clicks"),
        ),
    }
)

PATHS.update(
    {
        "/v1/events": {
            "post": _op(
                "Post an order or customer event to the flows",
                {
                    "202": _json("EventOutcome", "Stored: what it started, ended, resumed"),
                    "200": _json("EventOutcome", "Seen before (duplicate: true)"),
                    "400": _error("Malformed JSON"),
                    "422": _error("Invalid field (error.field names it)"),
                    "503": _error("Shutting down"),
                },
                requestBody=_body("Event"),
                **_FLOWS,
            )
        },
        "/v1/flows/metrics": {
            "get": _op(
                "Per flow and step: counts, rates; per experiment arm with 95 % intervals",
                {"200": _json("FlowMetrics", "Metrics"), "422": _error("Bad since")},
                parameters=[{"name": "since", "in": "query", "schema": TIME}],
                **_FLOWS,
            )
        },
        "/v1/customers/{id}/preferences": {
            "get": _op(
                "The customer's message kinds and frequency",
                {"200": _json("Preferences", "Preferences"), "404": _error("Unknown customer")},
                parameters=_CUSTOMER,
                **_FLOWS,
            ),
            "put": _op(
                "Change the kinds and/or the frequency (recorded in the timeline)",
                {
                    "200": _json("Preferences", "Stored"),
                    "404": _error("Unknown customer"),
                    "422": _error("Invalid field (error.field names it)"),
                },
                parameters=_CUSTOMER,
                requestBody=_body("PreferencesUpdate"),
                **_FLOWS,
            ),
        },
        "/v1/customers/{id}/timeline": {
            "get": _op(
                "Every decision for the customer: sent, deferred, skipped and why",
                {"200": _json("Timeline", "Oldest first"), "404": _error("Unknown customer")},
                parameters=[*_CUSTOMER, _LIMIT],
                **_FLOWS,
            )
        },
        "/v1/customers/{id}/export": {
            "get": _op(
                "Everything stored about the customer",
                {"200": _json("CustomerExport", "Export"), "404": _error("Unknown customer")},
                parameters=_CUSTOMER,
                **_FLOWS,
            )
        },
        "/v1/customers/{id}": {
            "delete": _op(
                "Erase the customer's personal data (the opt-out survives as a hash)",
                {"204": {"description": "Erased"}, "404": _error("Unknown customer")},
                parameters=_CUSTOMER,
                **_FLOWS,
            )
        },
    }
)

# -- fleet and inbox (gatewayd.fleet, gatewayd.api.inbox): "x-requires" the daemon's fleet ----

_FLEET = {"x-requires": "fleet"}
_INBOX = {"x-requires": "inbox"}
_NUMBER = [_path_param("number", "the other party's number (E.164, '+' as %2B)")]
_CURSORED = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
    {"name": "cursor", "in": "query", "schema": STR},
]

SCHEMAS.update(
    {
        "Alarm": _obj(
            {
                "modem": STR,
                "sim": NSTR,
                "alarm": {
                    "enum": [
                        "modem_gone",
                        "not_registered",
                        "sim_fault",
                        "pin_needed",
                        "storage_high",
                        "signal_low",
                        "credit_low",
                        "no_reports",
                        "send_errors",
                    ]
                },
                "detail": STR,
                "raised_at": TIME,
            },
            ("modem", "sim", "alarm", "detail", "raised_at"),
            closed=True,
        ),
        "AlarmList": _obj(
            {"alarms": {"type": "array", "items": _ref("Alarm")}}, ("alarms",), closed=True
        ),
        "Port": _obj(
            {
                "path": STR,
                "state": {"enum": ["attached", "busy", "not_at", "duplicate", "failed"]},
                "reason": STR,
                "modem": NSTR,
                "iccid": NSTR,
                "imei": NSTR,
            },
            ("path", "state", "reason", "modem", "iccid", "imei"),
            closed=True,
        ),
        "PortList": _obj(
            {"ports": {"type": "array", "items": _ref("Port")}}, ("ports",), closed=True
        ),
        "UssdRequest": _obj({"code": {**STR, "examples": ["*111#"]}}, ("code",)),
        "UssdAnswer": _obj(
            {
                "modem": STR,
                "code": STR,
                "answer": STR,
                "balance": {"type": "number"},
                "below_floor": {"type": "boolean"},
            },
            ("modem", "code", "answer"),
            closed=True,
        ),
        "Conversation": _obj(
            {
                "number": STR,
                "last_at": TIME,
                "last_direction": {"enum": ["in", "out"]},
                "last_text": STR,
                "messages": INT,
                "optout": {"type": ["string", "null"], "enum": ["all", "marketing", None]},
            },
            ("number", "last_at", "last_direction", "last_text", "messages", "optout"),
            closed=True,
        ),
        "ConversationList": _obj(
            {
                "conversations": {"type": "array", "items": _ref("Conversation")},
                "next_cursor": NSTR,
            },
            ("conversations", "next_cursor"),
            closed=True,
        ),
        "ConversationMessage": _obj(
            {
                "id": STR,
                "direction": {"enum": ["in", "out"]},
                "text": STR,
                "status": STR,
                "at": TIME,
                "modem": NSTR,
            },
            ("id", "direction", "text", "status", "at", "modem"),
            closed=True,
        ),
        "ConversationThread": _obj(
            {
                "number": STR,
                "optout": {"type": ["string", "null"], "enum": ["all", "marketing", None]},
                "messages": {"type": "array", "items": _ref("ConversationMessage")},
                "next_cursor": NSTR,
            },
            ("number", "optout", "messages", "next_cursor"),
            closed=True,
        ),
    }
)

PATHS.update(
    {
        "/v1/alarms": {
            "get": _op("Raised health alarms", {"200": _json("AlarmList", "Alarms")}, **_FLEET)
        },
        "/v1/ports": {
            "get": _op(
                "Ports discovery saw and what became of them",
                {"200": _json("PortList", "Ports")},
                **_FLEET,
            )
        },
        "/v1/modems/{id}/ussd": {
            "post": _op(
                "Run a USSD code on a modem and return the decoded answer",
                {
                    "200": _json("UssdAnswer", "The network's answer"),
                    "404": _error("No such modem"),
                    "409": _error("The modem is not ready"),
                    "422": _error("Bad code"),
                    "502": _error("The network or modem refused"),
                    "504": _error("No answer in time"),
                },
                parameters=[_path_param("id", "the modem's name")],
                requestBody=_body("UssdRequest"),
                **_FLEET,
            )
        },
        "/v1/conversations": {
            "get": _op(
                "Numbers by their latest message either way, newest first",
                {
                    "200": _json("ConversationList", "Conversations"),
                    "422": _error("Bad limit or cursor"),
                },
                parameters=_CURSORED,
                **_INBOX,
            )
        },
        "/v1/conversations/{number}": {
            "get": _op(
                "One number's messages both ways, newest first",
                {
                    "200": _json("ConversationThread", "Conversation"),
                    "422": _error("Bad number, limit or cursor"),
                },
                parameters=[*_NUMBER, *_CURSORED],
                **_INBOX,
            )
        },
    }
)

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "gatewayd",
        "version": __version__,
        "description": "SMS gateway API. Every error is {error: {code, message, field?}}.",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}
