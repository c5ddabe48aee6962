"""Message storage of a simulated modem: one :class:`MessageStore` per memory (SM, ME, SR).

Slots are numbered from the personality's index base; a full store refuses new messages
(``+CMS ERROR: 322`` for writes, and inbound is held by the network, unannounced).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class Stat(IntEnum):
    """27.005 message status (<stat>), numeric in PDU mode."""

    REC_UNREAD = 0
    REC_READ = 1
    STO_UNSENT = 2
    STO_SENT = 3
    ALL = 4


STAT_TEXT: dict[Stat, str] = {
    Stat.REC_UNREAD: "REC UNREAD",
    Stat.REC_READ: "REC READ",
    Stat.STO_UNSENT: "STO UNSENT",
    Stat.STO_SENT: "STO SENT",
    Stat.ALL: "ALL",
}
TEXT_STAT: dict[str, Stat] = {v: k for k, v in STAT_TEXT.items()}


class PduKind(StrEnum):
    """What a stored PDU is: it decides the text-mode layout of +CMGR/+CMGL."""

    DELIVER = "deliver"
    STATUS_REPORT = "status-report"
    SUBMIT = "submit"


@dataclass
class StoredMessage:
    """One slot's content: the PDU as the modem shows it (with its SMSC field)."""

    stat: Stat
    pdu: bytes
    kind: PduKind


class StoreFull(Exception):
    """The memory has no free slot."""


class MessageStore:
    """One memory (``SM``, ``ME``, ``SR``) with a fixed number of slots."""

    def __init__(self, name: str, capacity: int, index_base: int) -> None:
        self.name = name
        self.capacity = capacity
        self.index_base = index_base
        self._slots: dict[int, StoredMessage] = {}

    @property
    def used(self) -> int:
        """How many slots hold a message."""
        return len(self._slots)

    def valid_index(self, index: int) -> bool:
        """Whether ``index`` names a slot of this memory (empty or not)."""
        return self.index_base <= index < self.index_base + self.capacity

    def put(self, message: StoredMessage) -> int:
        """Store ``message`` in the lowest free slot and return its index."""
        for index in range(self.index_base, self.index_base + self.capacity):
            if index not in self._slots:
                self._slots[index] = message
                return index
        raise StoreFull(self.name)

    def get(self, index: int) -> StoredMessage | None:
        """The message in slot ``index``, or None when the slot is empty."""
        return self._slots.get(index)

    def delete(self, index: int) -> None:
        """Empty slot ``index`` (an empty slot stays empty)."""
        self._slots.pop(index, None)

    def delete_flagged(self, delflag: int) -> None:
        """AT+CMGD delflag 1-4: 1 read, 2 read+sent, 3 read+sent+unsent, 4 all."""
        doomed: set[Stat] = {Stat.REC_READ}
        if delflag >= 2:
            doomed.add(Stat.STO_SENT)
        if delflag >= 3:
            doomed.add(Stat.STO_UNSENT)
        if delflag >= 4:
            doomed.add(Stat.REC_UNREAD)
        for index in [i for i, m in self._slots.items() if m.stat in doomed]:
            del self._slots[index]

    def listing(self, stat: Stat) -> list[tuple[int, StoredMessage]]:
        """Messages with ``stat`` (every message for ``Stat.ALL``), by index."""
        return sorted(
            ((i, m) for i, m in self._slots.items() if stat is Stat.ALL or m.stat is stat),
            key=lambda pair: pair[0],
        )
