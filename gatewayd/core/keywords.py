"""STOP / START / HELP keywords (DESIGN: Keywords).

A keyword matches the whole message after trimming, case and accent folding and dropping
punctuation ("Baja", "STOP!", "stop."). First-word matching is an option per keyword, off
for words that occur in ordinary sentences: "cancelar mi pedido" must not opt anyone out.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from gatewayd.config.model import Keyword, KeywordConfig


class KeywordAction(StrEnum):
    """What an inbound keyword asks for."""

    STOP = "stop"
    START = "start"
    HELP = "help"


def _kw(word: str, first_word: bool = False) -> Keyword:
    return Keyword(word, first_word)


# Words that are unambiguous as a first word ("STOP please") may match there; ordinary
# words (cancel, end, baja, alto, basta...) only as the whole message.
DEFAULT_STOP = (
    _kw("STOP", True),
    _kw("STOPALL", True),
    _kw("UNSUBSCRIBE", True),
    _kw("CANCEL"),
    _kw("END"),
    _kw("QUIT"),
    _kw("BAJA"),
    _kw("ALTO"),
    _kw("PARAR"),
    _kw("CANCELAR"),
    _kw("PARE"),
    _kw("SAIR"),
    _kw("ARRET"),
    _kw("DESABONNER", True),
    _kw("STOPP", True),
    _kw("ABMELDEN", True),
    _kw("BASTA"),
    _kw("ANNULLA"),
)
DEFAULT_START = (
    _kw("START", True),
    _kw("UNSTOP", True),
    _kw("SUBSCRIBE"),
    _kw("ALTA"),
    _kw("REANUDAR"),
    _kw("VOLTAR"),
    _kw("REPRENDRE"),
    _kw("ANMELDEN"),
    _kw("RIPRENDI"),
)
DEFAULT_HELP = (
    _kw("HELP"),
    _kw("INFO"),
    _kw("AYUDA"),
    _kw("AJUDA"),
    _kw("AIDE"),
    _kw("HILFE"),
    _kw("AIUTO"),
)

DEFAULT_REPLIES = {
    KeywordAction.STOP: "You will get no more messages from us. Reply START to subscribe again.",
    KeywordAction.START: "You are subscribed again. Reply STOP to unsubscribe.",
    KeywordAction.HELP: "Reply STOP to unsubscribe, START to subscribe again.",
}


def fold(text: str) -> str:
    """Lower case, no accents, punctuation dropped, words separated by single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    letters = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    cleaned = "".join(ch if ch.isalnum() else " " for ch in letters)
    return " ".join(cleaned.split())


@dataclass(frozen=True)
class KeywordMatcher:
    """The configured keyword families (defaults where the config lists none)."""

    whole: dict[str, KeywordAction]
    first: dict[str, KeywordAction]
    replies: dict[KeywordAction, str]

    @classmethod
    def from_config(cls, config: KeywordConfig) -> KeywordMatcher:
        """Build from ``[keywords]``; STOP wins over START and HELP if a word is in two."""
        whole: dict[str, KeywordAction] = {}
        first: dict[str, KeywordAction] = {}
        families = (
            (KeywordAction.HELP, config.help or DEFAULT_HELP),
            (KeywordAction.START, config.start or DEFAULT_START),
            (KeywordAction.STOP, config.stop or DEFAULT_STOP),
        )
        for action, words in families:
            for kw in words:
                key = fold(kw.word)
                if not key:
                    continue
                whole[key] = action
                if kw.first_word:
                    first[key.split()[0]] = action
        replies = {
            KeywordAction.STOP: config.stop_reply or DEFAULT_REPLIES[KeywordAction.STOP],
            KeywordAction.START: config.start_reply or DEFAULT_REPLIES[KeywordAction.START],
            KeywordAction.HELP: config.help_reply or DEFAULT_REPLIES[KeywordAction.HELP],
        }
        return cls(whole, first, replies)

    def match(self, text: str) -> KeywordAction | None:
        """The action ``text`` asks for, if it is a keyword message."""
        folded = fold(text)
        if not folded:
            return None
        if folded in self.whole:
            return self.whole[folded]
        return self.first.get(folded.split()[0])
