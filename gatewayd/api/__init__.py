"""The HTTP API: an aiohttp application over the gateway core (see ``openapi.py``)."""

from gatewayd.api.app import create_app
from gatewayd.api.keys import ApiSettings, ApiState, WebhookFailures
from gatewayd.api.openapi import OPENAPI

__all__ = ["OPENAPI", "ApiSettings", "ApiState", "WebhookFailures", "create_app"]
