"""Outcomes a node knows but could not write: kept on local disk until the store takes them.

A modem answered ``+CMGS: <mr>`` (the part left the SIM) just as the database became
unreachable. Losing that answer would turn a known send into an unknown one. The worker
appends it here instead (one JSON line, fsynced) and stops working on the message; the
gateway writes it once the store answers again, before anything else resolves the part:
at start before ``recover``, then on a timer while entries remain. A write the store
refuses because the claim was lost meanwhile (another node took the message over when
the lease ran out) is dropped: the taker resolved the part by the unknown-outcome rule.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from gatewayd.store import ClaimLost, Store, WrongState
from gatewayd.store.records import PENDING_STATUSES

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SentOutcome:
    """One part's ``+CMGS`` answer, with the claim it was sent under."""

    message_id: str
    seq: int
    mr: int
    sent_at: datetime
    counted_at: datetime
    epoch: int | None  # the claim's epoch (PostgreSQL); None on SQLite

    def to_json(self) -> str:
        """One journal line."""
        return json.dumps(
            {
                "message_id": self.message_id,
                "seq": self.seq,
                "mr": self.mr,
                "sent_at": self.sent_at.isoformat(),
                "counted_at": self.counted_at.isoformat(),
                "epoch": self.epoch,
            }
        )

    @classmethod
    def from_json(cls, line: str) -> SentOutcome:
        """Parse one journal line (ValueError, KeyError or TypeError when it is not one)."""
        raw: dict[str, Any] = json.loads(line)
        epoch = raw["epoch"]
        return cls(
            message_id=str(raw["message_id"]),
            seq=int(raw["seq"]),
            mr=int(raw["mr"]),
            sent_at=datetime.fromisoformat(raw["sent_at"]),
            counted_at=datetime.fromisoformat(raw["counted_at"]),
            epoch=None if epoch is None else int(epoch),
        )


class OutcomeJournal:
    """Append-only file of outcomes waiting for the store (``path`` None: memory only)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._pending: list[SentOutcome] = []
        self._lock = asyncio.Lock()

    @property
    def pending(self) -> tuple[SentOutcome, ...]:
        """Outcomes not yet written to the store, oldest first."""
        return tuple(self._pending)

    async def load(self) -> None:
        """Read what a previous run left (a torn last line from a crash is skipped)."""
        if self.path is None:
            return
        text = await asyncio.to_thread(_read, self.path)
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                self._pending.append(SentOutcome.from_json(line))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("journal.bad_line", path=str(self.path), line=number, error=str(exc))
        if self._pending:
            log.warning("journal.loaded", path=str(self.path), outcomes=len(self._pending))

    async def add(self, outcome: SentOutcome) -> None:
        """Keep ``outcome`` durably (on disk before this returns)."""
        async with self._lock:
            self._pending.append(outcome)
            if self.path is not None:
                await asyncio.to_thread(_append, self.path, outcome.to_json() + "\n")

    async def done(self, written: list[SentOutcome]) -> None:
        """Forget ``written`` (stored or superseded); rewrite the file with the rest."""
        async with self._lock:
            gone = set(map(id, written))
            self._pending = [o for o in self._pending if id(o) not in gone]
            if self.path is not None:
                text = "".join(o.to_json() + "\n" for o in self._pending)
                await asyncio.to_thread(_replace, self.path, text)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _replace(path: Path, text: str) -> None:
    if not text:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


async def replay(
    journal: OutcomeJournal, store: Store, now: datetime, *, bound_for: timedelta
) -> bool:
    """Write the journal's outcomes to ``store``; True when none is left waiting.

    A message with parts still to send goes back to the queue, bound to its SIM for
    ``bound_for`` (its worker dropped it when the write failed). Stops at the first
    write the store cannot take (still unreachable): the rest wait for the next try.
    """
    finished: list[SentOutcome] = []
    try:
        for outcome in journal.pending:
            try:
                status = await store.part_sent(
                    outcome.message_id,
                    outcome.seq,
                    outcome.mr,
                    outcome.sent_at,
                    counted_at=outcome.counted_at,
                    epoch=outcome.epoch,
                )
            except (ClaimLost, WrongState) as exc:
                log.warning(
                    "journal.superseded", message=outcome.message_id, part=outcome.seq, why=str(exc)
                )
                finished.append(outcome)
                continue
            finished.append(outcome)
            log.info("journal.written", message=outcome.message_id, part=outcome.seq)
            if status in PENDING_STATUSES:
                await store.requeue(
                    outcome.message_id,
                    now,
                    next_attempt_at=now,
                    count_attempt=False,
                    avoid_identity=None,
                    bound_until=now + bound_for,
                    error_text="answer written from the journal",
                )
    except Exception as exc:  # whatever an unreachable database raises
        log.warning(
            "journal.store_unavailable",
            waiting=len(journal.pending) - len(finished),
            error=f"{type(exc).__name__}: {exc}",
        )
    if finished:
        await journal.done(finished)
    return not journal.pending
