"""Typed application keys: what the handlers reach through ``request.app``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from drivers.clock import Clock
from gatewayd.config.model import GatewayConfig
from gatewayd.core import Gateway, Page


class WebhookFailures(Protocol):
    """Where the deliveries that gave up are listed (the store)."""

    async def list_webhook_failures(self, limit: int, cursor: str | None) -> Page[Any]: ...


@dataclass(frozen=True)
class ApiSettings:
    """The API's own settings, from the config and its token files (again on SIGHUP)."""

    tokens: tuple[bytes, ...]
    max_batch: int
    default_region: str

    @classmethod
    def from_config(cls, config: GatewayConfig, tokens: tuple[bytes, ...]) -> ApiSettings:
        """Settings for ``config`` with the tokens read from its token files."""
        return cls(
            tokens=tokens,
            max_batch=config.api.max_batch,
            default_region=config.sending.default_region,
        )


@dataclass
class ApiState:
    """What changes while the API runs: its settings (SIGHUP) and whether it takes work."""

    settings: ApiSettings
    accepting: bool = True


GATEWAY = web.AppKey("gateway", Gateway)
FAILURES = web.AppKey("webhook_failures", WebhookFailures)
STATE = web.AppKey("state", ApiState)
CLOCK = web.AppKey("clock", Clock)
