"""Errors the gateway answers callers with: a machine code, a message, the field, HTTP status."""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every refusal the core hands to the API."""

    code = "gateway_error"
    http_status = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationError(GatewayError):
    """Bad input, naming the field and the reason."""

    code = "validation_error"
    http_status = 422

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", field=field)
        self.reason = reason


class OptedOut(GatewayError):
    """The recipient is on the opt-out list with a scope covering this message."""

    code = "opted_out"
    http_status = 409

    def __init__(self, number: str) -> None:
        super().__init__(f"{number} has opted out", field="to")
        self.number = number


class NotFound(GatewayError):
    """No such message, modem or opt-out entry."""

    code = "not_found"
    http_status = 404

    def __init__(self, what: str, key: str) -> None:
        super().__init__(f"{what} {key!r} not found")
        self.what = what
        self.key = key


class NotCancellable(GatewayError):
    """The message already left the queue."""

    code = "not_cancellable"
    http_status = 409

    def __init__(self, message_id: str, status: str) -> None:
        super().__init__(f"message {message_id} is {status} and can no longer be cancelled")
        self.message_id = message_id
        self.status = status


class IdempotencyConflict(GatewayError):
    """The idempotency key was used before with a different request body."""

    code = "idempotency_conflict"
    http_status = 422

    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was already used with a different request",
            field="Idempotency-Key",
        )
        self.key = key
