"""The caller in +CLIP and the technology in +COPS, as firmwares print them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from drivers.modem.parsing import parse_clip, parse_cops_technology


def test_international_local_withheld() -> None:
    assert parse_clip('"+34622000002",145') == "+34622000002"
    assert parse_clip('"34622000002",145,"",,"",0') == "+34622000002"  # '+' left out
    assert parse_clip('"622000002",129') == "622000002"
    assert parse_clip('"",128,"",,"",1') is None  # withheld
    assert parse_clip("garbage") is None


@given(st.text(max_size=80))
def test_any_line_gives_a_number_or_none(args: str) -> None:
    caller = parse_clip(args)
    assert caller is None or caller.lstrip("+").isdigit()


def test_technology_from_cops() -> None:
    assert parse_cops_technology('0,0,"SIMNET",7') == "4G"
    assert parse_cops_technology('0,0,"SIMNET",2') == "3G"
    assert parse_cops_technology('0,0,"SIMNET",0') == "2G"
    assert parse_cops_technology('0,0,"SIMNET"') is None
    assert parse_cops_technology("0") is None
