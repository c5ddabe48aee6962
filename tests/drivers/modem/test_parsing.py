"""Parsers for modem answers: the header shapes real firmware prints, and hypothesis."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.modem import parsing
from drivers.modem.parsing import ParseError

PDU = "07914306090000F0040B914326222222F20000621050900060000DE8373BCC0281D9ECF239FC03"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0,,23", (0, 23)),
        ("0,23", (0, 23)),
        ('1,"Mamá",23', (1, 23)),
        ("0", (0, None)),
        ("0,,", (0, None)),
        ("0,,23   ", (0, 23)),
        (" 1 , , 40 ", (1, 40)),
    ],
)
def test_cmgr_header_shapes(header: str, expected: tuple[int, int | None]) -> None:
    assert parsing.parse_cmgr_header(header) == expected


def test_cmgr_header_without_stat_is_a_typed_error() -> None:
    with pytest.raises(ParseError) as err:
        parsing.parse_cmgr_header(",,23")
    assert err.value.field == "+CMGR stat"


def test_cmgr_ignores_a_length_that_does_not_match() -> None:
    stored = parsing.parse_cmgr(("+CMGR: 0,,99", PDU.lower()), 3)
    assert stored == parsing.StoredPdu(3, 0, 99, PDU)


def test_cmgr_empty_slot() -> None:
    assert parsing.parse_cmgr((), 1) is None
    assert parsing.parse_cmgr(("+CMGR: 0,,0",), 1) is None


def test_cmgl_listing_with_odd_headers_and_a_broken_entry() -> None:
    lines = (
        "+CMGL: 1,0,,39",
        PDU,
        "+CMGL: 2,1,39",  # alpha missing
        PDU,
        "+CMGL: x,1,,39",  # unreadable index
        PDU,
        "+CMGL: 4,0,,39",  # PDU line missing
        '+CMGL: 5,1,"",39 ',
        PDU,
    )
    found, bad = parsing.parse_cmgl(lines)
    assert [(s.index, s.stat, s.length) for s in found] == [(1, 0, 39), (2, 1, 39), (5, 1, 39)]
    assert bad == ["+CMGL: x,1,,39", "+CMGL: 4,0,,39"]


_FIELD = st.one_of(
    st.integers(min_value=0, max_value=999).map(str),
    st.just(""),
    st.text(alphabet="abc ÁÑ,", max_size=6).map(lambda t: f'"{t.replace(",", "")}"'),
    st.text(max_size=5),
)


@given(st.lists(_FIELD, max_size=6), st.text(alphabet=" ", max_size=3))
def test_header_parsers_return_or_raise_parse_error(fields: list[str], pad: str) -> None:
    text = ",".join(fields) + pad
    for parser in (parsing.parse_cmgr_header, parsing.parse_cmgl_header, parsing.parse_cpms):
        outcome = _value_or_field(parser, text)
        # Either a parsed tuple or a ParseError naming the field: never another exception.
        assert isinstance(outcome, tuple) or outcome.startswith(("+CMG", "+CPMS"))


def _value_or_field(
    parser: Callable[[str], tuple[object, ...]], text: str
) -> tuple[object, ...] | str:
    try:
        return parser(text)
    except ParseError as exc:
        return exc.field


@given(
    st.integers(min_value=0, max_value=3),
    st.sampled_from(["", '"x"', '"Ana, Luis"']),
    st.integers(min_value=1, max_value=176),
    st.sampled_from(["", " ", "   "]),
)
def test_cmgr_header_roundtrip(stat: int, alpha: str, length: int, pad: str) -> None:
    assert parsing.parse_cmgr_header(f"{stat},{alpha},{length}{pad}") == (stat, length)
    assert parsing.parse_cmgl_header(f"7,{stat},{alpha},{length}{pad}") == (7, stat, length)


@given(st.lists(st.text(max_size=40), max_size=12))
def test_cmgl_never_raises_on_arbitrary_lines(lines: list[str]) -> None:
    found, bad = parsing.parse_cmgl(tuple(lines))
    assert all(parsing.is_hex(s.pdu) for s in found)
    assert len(found) + len(bad) <= sum(1 for ln in lines if ln.startswith("+CMGL:"))


@pytest.mark.parametrize(("rssi", "dbm"), [(0, -113), (1, -111), (15, -83), (31, -51), (99, None)])
def test_csq_to_dbm(rssi: int, dbm: int | None) -> None:
    assert parsing.parse_csq(f"{rssi},99") == dbm


@pytest.mark.parametrize(
    ("text", "unsolicited", "word"),
    [
        ("0,1", False, "home"),
        ('2,5,"1A2B","0C3D"', False, "roaming"),
        ("0", True, "not_registered"),
        ("3", True, "denied"),
        ("2", False, "searching"),  # read form with the stat alone
    ],
)
def test_creg(text: str, unsolicited: bool, word: str) -> None:
    assert parsing.parse_creg(text, unsolicited=unsolicited) == word


def test_cops_cpms_and_storage_choice() -> None:
    assert parsing.parse_cops('0,0,"Movistar",7') == "Movistar"
    assert parsing.parse_cops("0") is None
    assert parsing.parse_cpms('"ME",3,50,"ME",3,50,"ME",3,50') == ("ME", 3, 50)
    assert parsing.parse_cpms("3,50,3,50,3,50") == (None, 3, 50)
    options = parsing.parse_cpms_options('("SM","ME","SR"),("SM","ME"),("SM","ME")')
    assert parsing.choose_storage(options, ("ME", "MT", "SM")) == ["ME", "ME", "ME"]
    assert parsing.choose_storage([("SM",)], ("ME", "SM")) == ["SM"]


def test_identity_lines() -> None:
    assert parsing.parse_iccid(["89340710070000000016"]) == "89340710070000000016"
    assert parsing.parse_iccid(["^ICCID: 8934071007000000001F"]) == "8934071007000000001"
    assert parsing.parse_iccid(["+CME ERROR: 10"]) is None
    assert parsing.parse_identity(["350070000000017"]) == "350070000000017"
    assert parsing.parse_text(["Manufacturer: huawei"], "+CGMI:") == "huawei"
    assert parsing.parse_text(["+CGMI: Quectel"], "+CGMI:") == "Quectel"
    assert parsing.first_int('+QPINC: "SC",3,10') == 3
    assert parsing.first_int("^CPIN: SIM PIN,2,10,3,10,2") == 2
    assert parsing.parse_mem_index('"SR",4') == ("SR", 4)
    assert parsing.parse_cmgs("12") == 12
    with pytest.raises(ParseError):
        parsing.parse_cmgs("256")
