"""Logging: structlog events, JSON lines under systemd, readable text on a terminal.

:func:`configure_logging` is called once by the daemon. Phone numbers are masked by default
(``+34600000012`` -> ``+3460*****12``: the country code, two digits and the last two stay)
in every event value, nested or inside a longer string, so logs can be shared without
leaking who was messaged. Standard-library loggers (aiohttp, asyncio) render the same way.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import phonenumbers
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from gatewayd.config.model import LoggingConfig

# E.164 as written with '+': the form every number takes inside gatewayd.
_E164 = re.compile(r"(?<![\w+])\+[1-9]\d{6,14}(?!\d)")
# Keys whose plain-digit values are phone numbers too (an inbound sender may be national).
_NUMBER_KEYS = frozenset({"to", "number", "sender", "from", "recipient", "msisdn", "oa", "da"})
_DIGITS = re.compile(r"^\+?\d{6,15}$")


def mask_number(number: str) -> str:
    """``+34600000012`` -> ``+3460*****12``: country code and 2 digits, then the last 2."""
    plus = "+" if number.startswith("+") else ""
    digits = number[len(plus) :]
    cc = _country_code_length(digits) if plus else 0
    keep_head = cc + 2
    if len(digits) <= keep_head + 2:
        return plus + digits[: max(0, len(digits) - 2)] + "**"
    hidden = len(digits) - keep_head - 2
    return f"{plus}{digits[:keep_head]}{'*' * hidden}{digits[-2:]}"


def _country_code_length(digits: str) -> int:
    # Calling codes are prefix-free (ITU E.164), so the first known prefix is the code.
    for size in (1, 2, 3):
        if int(digits[:size]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return size
    return 0


def _mask_text(text: str) -> str:
    return _E164.sub(lambda m: mask_number(m.group(0)), text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return _mask_text(value)
    if isinstance(value, Mapping):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask_value(v) for v in value]
    return value


def mask_phone_numbers(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """structlog processor: mask every phone number in every value of the event."""
    for key, value in event.items():
        if key in _NUMBER_KEYS and isinstance(value, str) and _DIGITS.match(value):
            event[key] = mask_number(value)
        else:
            event[key] = _mask_value(value)
    return event


def wants_json(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """JSON under systemd (its variables are set) or when ``stream`` is not a terminal."""
    env = os.environ if environ is None else environ
    if "JOURNAL_STREAM" in env or "INVOCATION_ID" in env:
        return True
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):
        return True


def configure_logging(
    config: LoggingConfig | None = None,
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Configure structlog and the standard library's logging (once, at start-up)."""
    config = config or LoggingConfig()
    out = stream or sys.stdout
    use_json = config.format == "json" or (config.format == "auto" and wants_json(out, environ))
    level = logging.getLevelNamesMapping()[config.level.upper()]

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor
    if use_json:
        # Tracebacks become text here, before masking, so numbers in them are masked too.
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_colors(out))
    if config.mask_numbers:
        shared.append(mask_phone_numbers)

    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(out),
        # Not cached: a later configure_logging (tests, SIGHUP) must reach existing loggers.
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would repeat every request (and its query string) at info.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _colors(stream: TextIO) -> bool:
    try:
        return stream.isatty() and "NO_COLOR" not in os.environ
    except (AttributeError, ValueError):
        return False
