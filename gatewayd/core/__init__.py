"""The gateway core: submit, dispatch, limits, routing, reports, inbound, opt-outs."""

from gatewayd.core.errors import (
    GatewayError,
    IdempotencyConflict,
    NotCancellable,
    NotFound,
    OptedOut,
    ValidationError,
)
from gatewayd.core.gateway import Gateway
from gatewayd.core.keywords import KeywordAction, KeywordMatcher, fold
from gatewayd.core.limiter import Limiter
from gatewayd.core.ports import ModemPort
from gatewayd.core.views import (
    HistoryEntry,
    InboundView,
    LimitHeadroom,
    MessageView,
    ModemStatusView,
    OptOutView,
    PartView,
    SubmitRequest,
    SubmitResult,
)
from gatewayd.store import Category, MessageStatus, OptOutScope, Page, PartStatus, Priority

__all__ = [
    "Category",
    "Gateway",
    "GatewayError",
    "HistoryEntry",
    "IdempotencyConflict",
    "InboundView",
    "KeywordAction",
    "KeywordMatcher",
    "LimitHeadroom",
    "Limiter",
    "MessageStatus",
    "MessageView",
    "ModemPort",
    "ModemStatusView",
    "NotCancellable",
    "NotFound",
    "OptOutScope",
    "OptOutView",
    "OptedOut",
    "Page",
    "PartStatus",
    "PartView",
    "Priority",
    "SubmitRequest",
    "SubmitResult",
    "ValidationError",
    "fold",
]
