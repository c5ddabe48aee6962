"""The +CMS / +CME tables and classes (DESIGN.md, "+CMS ERROR classes")."""

from __future__ import annotations

import pytest

from drivers.at import CmeError, CmsClass, CmsError, classify_cms, cms_meaning
from drivers.at.errors import error_from_final


@pytest.mark.parametrize("code", [8, 10, 50, 330, 331, 332])
def test_sim_fault_codes(code: int) -> None:
    assert classify_cms(code) is CmsClass.SIM_FAULT


def test_500_is_a_sim_fault_only_when_it_repeats() -> None:
    assert classify_cms(500) is CmsClass.TEMPORARY
    assert classify_cms(500, repeated=True) is CmsClass.SIM_FAULT


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (38, "temporary"),
        (42, "temporary"),
        (1, "permanent"),
        (304, "permanent"),
        (None, "temporary"),
        (9999, "temporary"),
    ],
)
def test_classes(code: int | None, cls: str) -> None:
    assert classify_cms(code) == cls


def test_meaning_and_verbose_text() -> None:
    assert cms_meaning(330) == "SMSC address unknown"
    err = error_from_final("AT+CMGS=20", "+CMS ERROR: SMSC address unknown")
    assert isinstance(err, CmsError)
    assert err.code == 330
    cme = error_from_final("AT+CPIN=1234", "+CME ERROR: incorrect password")
    assert isinstance(cme, CmeError)
    assert cme.code == 16
    odd = error_from_final("AT", "+CME ERROR: something vendor")
    assert isinstance(odd, CmeError)
    assert odd.code is None
    assert odd.meaning == "something vendor"
