"""Command-line parsing and the engine's framing, without a port."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.sim.engine import Op, parse_command_line, split_args
from drivers.sim.errors import SyntaxFailure
from drivers.sim.storage import MessageStore, PduKind, Stat, StoredMessage, StoreFull


def test_parse_chained_extended_and_basic_commands() -> None:
    commands = parse_command_line('E0V1+CMGF=1;+CPMS="SM","ME";+CSQ;^ICCID?;+CMGL=?;S0=0;&F')
    assert [(c.name, c.op, c.args) for c in commands] == [
        ("E", Op.SET, ("0",)),
        ("V", Op.SET, ("1",)),
        ("+CMGF", Op.SET, ("1",)),
        ("+CPMS", Op.SET, ("SM", "ME")),
        ("+CSQ", Op.EXEC, ()),
        ("^ICCID", Op.READ, ()),
        ("+CMGL", Op.TEST, ()),
        ("S0", Op.SET, ("0",)),
        ("&F", Op.SET, ("0",)),
    ]


def test_quoted_semicolons_and_commas_stay_in_arguments() -> None:
    [command] = parse_command_line('+CMGS="+34;600,1",145')
    assert command.args == ("+34;600,1", "145")
    assert command.quoted == (True, False)


@pytest.mark.parametrize("body", ["+", '+CMGS="unterminated', "+CSQ!", "%%"])
def test_malformed_lines_raise_syntax_failure(body: str) -> None:
    with pytest.raises(SyntaxFailure):
        parse_command_line(body)


@given(st.text(max_size=60))
def test_parser_never_crashes(body: str) -> None:
    try:
        commands = parse_command_line(body)
    except SyntaxFailure:
        return
    assert all(c.name for c in commands)


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters='",'), max_size=8)))
def test_split_args_round_trips_quoted_values(values: list[str]) -> None:
    if not values:
        return
    text = ",".join(f'"{v}"' for v in values)
    args, quoted = split_args(text)
    assert list(args) == [v.strip() for v in values]
    assert all(quoted)


def test_store_fills_lowest_free_slot_and_refuses_when_full() -> None:
    store = MessageStore("SM", 2, index_base=0)
    msg = StoredMessage(Stat.REC_UNREAD, b"\x00", PduKind.DELIVER)
    assert [store.put(msg), store.put(msg)] == [0, 1]
    with pytest.raises(StoreFull):
        store.put(msg)
    store.delete(0)
    assert store.put(StoredMessage(Stat.REC_READ, b"\x00", PduKind.DELIVER)) == 0
    assert store.valid_index(1)
    assert not store.valid_index(2)
    store.delete_flagged(1)
    assert [i for i, _ in store.listing(Stat.ALL)] == [1]
