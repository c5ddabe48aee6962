"""Handsets: phone numbers outside the simulation whose behaviour is scripted.

A handset decides per part what the network reports (delivered, failed, expired, with
probabilities drawn from the network's seeded RNG), reassembles concatenated SMS, keeps
what it received, and may answer: ``replies[n]`` answers the n-th message it receives.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from drivers.sim.events import Waiters


class Outcome(StrEnum):
    """What happens to one part sent to a handset."""

    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"


# TP-ST values (TS 23.040 9.2.3.15) of the final status report for each outcome.
STATUS_OF: dict[Outcome, int] = {
    Outcome.DELIVERED: 0x00,  # short message received by the SME
    Outcome.FAILED: 0x41,  # permanent error: incompatible destination
    Outcome.EXPIRED: 0x46,  # permanent error: SM validity period expired
}
# "Still trying" (temporary error, SC keeps trying): congestion.
STATUS_PENDING = 0x20


@dataclass(frozen=True)
class ReceivedPart:
    """One part as it reached the handset."""

    time: datetime
    sender: str
    text: str
    mr: int
    concat_ref: int | None
    seq: int
    total: int


@dataclass(frozen=True)
class ReceivedSms:
    """A whole message as the handset shows it (parts reassembled by sender and reference)."""

    time: datetime
    sender: str
    text: str
    parts: int


def parse_report(report: str | Mapping[str, float]) -> dict[Outcome, float]:
    """``"delivered"`` or ``{"delivered": 0.9, "failed": 0.1}`` -> weights by outcome."""
    if isinstance(report, str):
        try:
            return {Outcome(report): 1.0}
        except ValueError:
            raise ValueError(f"report: unknown outcome {report!r}") from None
    weights: dict[Outcome, float] = {}
    for name, weight in report.items():
        try:
            outcome = Outcome(name)
        except ValueError:
            raise ValueError(f"report: unknown outcome {name!r}") from None
        if weight < 0:
            raise ValueError(f"report: negative probability for {name!r}")
        weights[outcome] = float(weight)
    if not weights or sum(weights.values()) <= 0:
        raise ValueError("report: give at least one outcome a positive probability")
    return weights


class Handset:
    """A scripted phone number outside the simulation."""

    def __init__(
        self,
        number: str,
        *,
        report: str | Mapping[str, float] = "delivered",
        report_delay: float | tuple[float, float] = 5.0,
        reports: bool = True,
        pending_first: bool = False,
        replies: Sequence[str] = (),
        reply_delay: float = 2.0,
    ) -> None:
        self.number = number
        self.weights = parse_report(report)
        low, high = (
            (report_delay, report_delay) if isinstance(report_delay, int | float) else report_delay
        )
        if not 0 <= low <= high:
            raise ValueError("report_delay: need 0 <= low <= high")
        self.report_delay = (float(low), float(high))
        self.reports = reports
        self.pending_first = pending_first
        self.replies = list(replies)
        if reply_delay < 0:
            raise ValueError("reply_delay: need seconds >= 0")
        self.reply_delay = reply_delay
        self.parts: list[ReceivedPart] = []
        self.received: list[ReceivedSms] = []
        self._partial: dict[tuple[str, int, int], dict[int, str]] = {}
        self._waiters = Waiters()

    def choose(self, rng: random.Random) -> Outcome:
        """Draw the outcome of one part."""
        outcomes = list(self.weights)
        return rng.choices(outcomes, weights=[self.weights[o] for o in outcomes])[0]

    def delay(self, rng: random.Random) -> float:
        """Draw the seconds until the status report."""
        low, high = self.report_delay
        return rng.uniform(low, high) if high > low else low

    def take(self, part: ReceivedPart) -> ReceivedSms | None:
        """Keep a delivered part; return the whole message when this part completes it."""
        self.parts.append(part)
        done: ReceivedSms | None = None
        if part.concat_ref is None or part.total <= 1:
            done = ReceivedSms(part.time, part.sender, part.text, 1)
        else:
            key = (part.sender, part.concat_ref, part.total)
            pieces = self._partial.setdefault(key, {})
            pieces[part.seq] = part.text
            if len(pieces) == part.total:
                text = "".join(pieces[i] for i in sorted(pieces))
                del self._partial[key]
                done = ReceivedSms(part.time, part.sender, text, part.total)
        if done is not None:
            self.received.append(done)
        self._waiters.notify()
        return done

    def reply_to(self, message_number: int) -> str | None:
        """The scripted answer to the ``message_number``-th (0-based) message, if any."""
        if message_number < len(self.replies):
            return self.replies[message_number]
        return None

    async def wait_received(
        self,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 (plain seconds: the test API)
    ) -> list[ReceivedSms]:
        """Wait until ``count`` whole messages arrived; returns them."""
        await self._waiters.wait_for(
            lambda: len(self.received) >= count, timeout, f"{count} messages at {self.number}"
        )
        return list(self.received)

    def info(self) -> dict[str, object]:
        """A JSON-able summary for the control API."""
        return {
            "number": self.number,
            "report": {str(k): v for k, v in self.weights.items()},
            "report_delay": list(self.report_delay),
            "reports": self.reports,
            "replies": self.replies,
            "received": [
                {"time": r.time.isoformat(), "sender": r.sender, "text": r.text, "parts": r.parts}
                for r in self.received
            ],
            "parts": len(self.parts),
        }
