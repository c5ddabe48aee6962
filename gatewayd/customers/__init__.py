"""Customers in control: message preferences, preference keywords, the decision timeline."""

from gatewayd.customers.preferences import (
    ESSENTIAL_KINDS,
    Frequency,
    MessageKind,
    Preferences,
    parse_preferences,
)

__all__ = ["ESSENTIAL_KINDS", "Frequency", "MessageKind", "Preferences", "parse_preferences"]
