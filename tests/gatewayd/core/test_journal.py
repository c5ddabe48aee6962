"""The outcome journal: durable lines, a torn last line skipped, rewritten as it drains."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gatewayd.core.journal import OutcomeJournal, SentOutcome

AT = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)


def outcome(n: int, epoch: int | None = 7) -> SentOutcome:
    return SentOutcome(f"m{n}", 1, n % 256, AT, AT, epoch)


async def test_outcomes_survive_a_restart_and_leave_as_they_are_written(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.journal"
    journal = OutcomeJournal(path)
    await journal.add(outcome(1))
    await journal.add(outcome(2, epoch=None))
    # A crash mid-append leaves a torn line: the next run skips it and keeps the rest.
    with path.open("a") as fh:
        fh.write('{"message_id": "m3", "se')
    again = OutcomeJournal(path)
    await again.load()
    assert again.pending == (outcome(1), outcome(2, epoch=None))
    await again.done([again.pending[0]])
    third = OutcomeJournal(path)
    await third.load()
    assert third.pending == (outcome(2, epoch=None),)
    await third.done(list(third.pending))
    assert not path.exists()


async def test_a_journal_without_a_file_keeps_outcomes_in_memory() -> None:
    journal = OutcomeJournal()
    await journal.load()
    await journal.add(outcome(1))
    assert journal.pending == (outcome(1),)


@given(
    st.text(min_size=1, max_size=40),
    st.integers(1, 255),
    st.integers(0, 255),
    st.none() | st.integers(0, 2**62),
)
def test_a_line_reads_back_as_written(mid: str, seq: int, mr: int, epoch: int | None) -> None:
    o = SentOutcome(mid, seq, mr, AT, AT, epoch)
    assert SentOutcome.from_json(o.to_json()) == o
