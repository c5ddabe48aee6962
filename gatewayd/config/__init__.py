"""Configuration: typed values (``model``) and the validating TOML loader (``load``)."""

from gatewayd.config.load import ConfigError, load_config, parse_config, read_secret_file
from gatewayd.config.model import (
    ApiConfig,
    ClusterConfig,
    FlowsConfig,
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
    "ClusterConfig",
    "ConfigError",
    "FlowsConfig",
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
    "load_config",
    "parse_config",
    "read_secret_file",
]
