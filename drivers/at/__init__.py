"""AT channel: line framing, one command in flight, the ``> `` prompt, URC dispatch."""

from drivers.at.channel import AtChannel, AtResponse, Urc, timeout_for, urc_name
from drivers.at.errors import (
    CME_CODES,
    CMS_CODES,
    AtError,
    AtTimeout,
    CmeError,
    CmsClass,
    CmsError,
    PortGone,
    PromptAborted,
    classify_cms,
    cme_meaning,
    cms_meaning,
)
from drivers.at.framing import Framer, Line, Prompt

__all__ = [
    "CME_CODES",
    "CMS_CODES",
    "AtChannel",
    "AtError",
    "AtResponse",
    "AtTimeout",
    "CmeError",
    "CmsClass",
    "CmsError",
    "Framer",
    "Line",
    "PortGone",
    "Prompt",
    "PromptAborted",
    "Urc",
    "classify_cms",
    "cme_meaning",
    "cms_meaning",
    "timeout_for",
    "urc_name",
]
