"""What the store refuses, typed so the core can answer each with its own error."""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's refusals."""


class IdempotencyKeyReused(StoreError):
    """The idempotency key was used before for a different request."""

    def __init__(self, key: str, message_id: str) -> None:
        super().__init__(f"idempotency key {key!r} was used for another request ({message_id})")
        self.key = key
        self.message_id = message_id


class RecipientOptedOut(StoreError):
    """The recipient's opt-out scope covers the message."""

    def __init__(self, number: str, scope: str) -> None:
        super().__init__(f"{number} opted out ({scope})")
        self.number = number
        self.scope = scope


class WrongState(StoreError):
    """The message is not in a state that allows the change (e.g. cancel after sending)."""

    def __init__(self, message_id: str, status: str) -> None:
        super().__init__(f"message {message_id} is {status}")
        self.message_id = message_id
        self.status = status


class SchemaTooNew(StoreError):
    """The database was migrated by a newer gatewayd than this one."""


class ClaimLost(StoreError):
    """This node no longer holds the message's claim (PostgreSQL: lease or epoch lost).

    Another node took the message over, or this node lost the database: write nothing
    about it and send nothing more of it.
    """

    def __init__(self, message_id: str, why: str) -> None:
        super().__init__(f"claim on message {message_id} lost: {why}")
        self.message_id = message_id
        self.why = why
