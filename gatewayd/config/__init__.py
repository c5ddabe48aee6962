"""Configuration: typed values (``model``) and the validating TOML loader (``load``)."""

from gatewayd.config.model import (
    ApiConfig,
    GatewayConfig,
    Keyword,
    KeywordConfig,
    Limits,
    LoggingConfig,
    ModemConfig,
    RoutingRule,
    SendingConfig,
    UnknownOutcomeRule,
    WebhookConfig,
)

__all__ = [
    "ApiConfig",
    "GatewayConfig",
    "Keyword",
    "KeywordConfig",
    "Limits",
    "LoggingConfig",
    "ModemConfig",
    "RoutingRule",
    "SendingConfig",
    "UnknownOutcomeRule",
    "WebhookConfig",
]
