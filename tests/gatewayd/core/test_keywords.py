"""Keyword folding and matching (DESIGN: Keywords)."""

from __future__ import annotations

import pytest

from gatewayd.config.model import Keyword, KeywordConfig
from gatewayd.core import KeywordAction, KeywordMatcher, fold

DEFAULTS = KeywordMatcher.from_config(KeywordConfig())


def test_fold_drops_case_accents_and_punctuation() -> None:
    assert fold("  ¡ArrÊT!  ") == "arret"
    assert fold("Désabonner.") == "desabonner"
    assert fold("STOP,   please!!") == "stop please"
    assert fold("…") == ""


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("STOP", KeywordAction.STOP),
        ("stop.", KeywordAction.STOP),
        ("Baja", KeywordAction.STOP),
        ("BAJA!", KeywordAction.STOP),
        ("Cancelar", KeywordAction.STOP),
        ("pare", KeywordAction.STOP),
        ("Sair", KeywordAction.STOP),
        ("arrêt", KeywordAction.STOP),
        ("Stopp", KeywordAction.STOP),
        ("abmelden", KeywordAction.STOP),
        ("Basta!", KeywordAction.STOP),
        ("annulla", KeywordAction.STOP),
        ("unsubscribe me", KeywordAction.STOP),
        ("Start", KeywordAction.START),
        ("alta", KeywordAction.START),
        ("UNSTOP", KeywordAction.START),
        ("help?", KeywordAction.HELP),
        ("Ayuda", KeywordAction.HELP),
        ("ajuda", KeywordAction.HELP),
        ("Aide", KeywordAction.HELP),
        ("hilfe", KeywordAction.HELP),
        ("AIUTO", KeywordAction.HELP),
        ("cancelar mi pedido", None),
        ("baja la música", None),
        ("the end of the world", None),
        ("I want to quit smoking", None),
        ("help me with my order", None),
        ("", None),
        ("!!!", None),
    ],
)
def test_default_families(text: str, action: KeywordAction | None) -> None:
    assert DEFAULTS.match(text) is action


def test_configured_words_replace_the_defaults_with_first_word_per_keyword() -> None:
    matcher = KeywordMatcher.from_config(
        KeywordConfig(stop=(Keyword("Darse de baja"), Keyword("FIN", first_word=True)))
    )
    assert matcher.match("darse de baja") is KeywordAction.STOP
    assert matcher.match("fin por favor") is KeywordAction.STOP
    assert matcher.match("stop") is None  # the configured list replaces the defaults
    assert matcher.match("help") is KeywordAction.HELP  # other families keep theirs
    assert matcher.replies[KeywordAction.STOP]
