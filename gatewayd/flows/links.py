"""Short links: URLs in a message become ``{base}/s/{code}``; clicks vs. link scanners.

Codes come from :func:`secrets.token_urlsafe` (8 random bytes, 11 characters): unguessable,
so a code cannot be walked to find other customers' links. Link-preview fetchers and carrier
URL scanners open links too (DESIGN: short links): a ``HEAD``, a known preview agent, or a
hit within seconds of delivery is recorded but not counted as a click.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

_URL = re.compile(r"https?://[^\s<>\"']+")
# Sentence punctuation that follows a URL in prose, not part of it.
_TRAILING = ".,;:!?)]}»"
# Substrings of User-Agent headers of link-preview and scanning robots (lower case).
PREVIEW_AGENTS = (
    "facebookexternalhit",
    "whatsapp",
    "telegrambot",
    "twitterbot",
    "slackbot",
    "discordbot",
    "skypeuripreview",
    "linkedinbot",
    "googlebot",
    "bingpreview",
    "applebot",
    "iframely",
    "embedly",
    "preview",
    "bot",
    "crawler",
    "spider",
    "curl",
    "python-requests",
)


def new_code() -> str:
    """An unguessable short-link code (11 URL-safe characters)."""
    return secrets.token_urlsafe(8)


def shorten(
    text: str, base_url: str, code_for: Callable[[str], str]
) -> tuple[str, list[tuple[str, str]]]:
    """``text`` with each URL replaced by ``{base_url}/s/{code}``; returns the (code, url) pairs.

    ``code_for(url)`` gives the code (a fresh one, or the one a retried step already made).
    The same URL twice in one text gets one code.
    """
    base = base_url.rstrip("/")
    made: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        url = match.group(0)
        tail = ""
        while url and url[-1] in _TRAILING:
            url, tail = url[:-1], url[-1] + tail
        if url.startswith(base + "/s/"):
            return match.group(0)
        if url not in made:
            made[url] = code_for(url)
        return f"{base}/s/{made[url]}{tail}"

    out = _URL.sub(replace, text)
    return out, [(code, url) for url, code in made.items()]


def not_a_click(
    method: str,
    user_agent: str | None,
    at: datetime,
    delivered_at: datetime | None,
    window_seconds: float,
) -> str | None:
    """Why a hit is not a person's click (None when it is one)."""
    if method.upper() == "HEAD":
        return "head"
    agent = (user_agent or "").lower()
    if not agent:
        return "no_user_agent"
    if any(bot in agent for bot in PREVIEW_AGENTS):
        return "preview_agent"
    if delivered_at is not None and at - delivered_at < timedelta(seconds=window_seconds):
        return "too_soon_after_delivery"
    return None
