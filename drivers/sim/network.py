"""The simulated network: modems with MSISDNs, scripted handsets, an SMSC in between.

An SMS to another simulated modem's number arrives there as inbound (concatenated parts
are collected and re-encoded as SMS-DELIVER parts with the same reference); an SMS to any
other number goes to a :class:`Handset` (created with the network's defaults on first use).
Status reports come back to the sending modem for parts that asked for one.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

import structlog

from drivers.clock import Clock, SystemClock
from drivers.pdu import encode_deliver, encode_status_report
from drivers.sim.faults import DEFAULT_LATENCY, Faults
from drivers.sim.handsets import STATUS_OF, STATUS_PENDING, Handset, Outcome, ReceivedPart
from drivers.sim.modem import Identity, SimModem
from drivers.sim.personalities import personality as find_personality
from drivers.sim.records import OutgoingPart, SentRecord
from drivers.sim.storage import PduKind

log = structlog.get_logger(__name__)

DEFAULT_SMSC = "+34609000000"


def number_key(number: str) -> str:
    """Digits of a phone number: how the network matches numbers (``+34 600-1`` = ``346001``)."""
    return re.sub(r"\D", "", number)


def luhn_complete(digits: str) -> str:
    """``digits`` followed by its Luhn check digit (ICCID and IMEI use one)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return digits + str((10 - total % 10) % 10)


class SimNetwork:
    """Simulated modems and handsets that exchange SMS through one simulated SMSC."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        seed: int = 0,
        smsc: str = DEFAULT_SMSC,
        sent_log: str | Path | None = None,
        default_latency: tuple[float, float] = DEFAULT_LATENCY,
        default_handset: Mapping[str, object] | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.seed = seed
        self.rng = random.Random(seed)
        self.smsc = smsc
        self.sent_log = Path(sent_log) if sent_log is not None else None
        self.default_latency = default_latency
        self.default_handset = dict(default_handset or {})
        self.modems: list[SimModem] = []
        self._by_number: dict[str, SimModem] = {}
        self._handsets: dict[str, Handset] = {}
        self._partial: dict[tuple[str, str, int, int], dict[int, OutgoingPart]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- building ---------------------------------------------------------------------

    async def add_modem(
        self,
        profile: str = "generic",
        msisdn: str | None = None,
        *,
        transport: str = "pty",
        latency: tuple[float, float] | None = None,
        pin: str | None = None,
        puk: str = "12345678",
        link_path: str | None = None,
        tcp_port: int = 0,
        iccid: str | None = None,
        imei: str | None = None,
        imsi: str | None = None,
        modem_id: str | None = None,
        silent_ports: Sequence[str] = (),
    ) -> SimModem:
        """Create a modem, open its port(s) and start it answering AT commands.

        ``silent_ports`` are symlink paths of the stick's other interfaces: ptys that never
        answer AT (a multi-port stick), plugged and pulled with the AT port.
        """
        n = len(self.modems) + 1
        modem_id = modem_id or f"modem-{n}"
        if any(m.id == modem_id for m in self.modems):
            raise ValueError(f"modem_id: {modem_id!r} already exists")
        msisdn = msisdn or f"+346000{n:05d}"
        if not number_key(msisdn):
            raise ValueError(f"msisdn: {msisdn!r} has no digits")
        if number_key(msisdn) in self._by_number:
            raise ValueError(f"msisdn: {msisdn!r} already belongs to a modem")
        identity = Identity(
            modem_id=modem_id,
            msisdn=msisdn,
            iccid=iccid or luhn_complete(f"8934071{self.seed % 1000:03d}{n:09d}"),
            imsi=imsi or f"21499{self.seed % 1000:03d}{n:07d}",
            imei=imei or luhn_complete(f"35{self.seed % 1000:03d}{n:09d}"),
        )
        faults = Faults(latency=latency if latency is not None else self.default_latency)
        modem = SimModem(
            network=self,
            identity=identity,
            personality=find_personality(profile),
            faults=faults,
            rng=random.Random(f"{self.seed}/{modem_id}"),
            pin=pin,
            puk=puk,
            transport=transport,
            link_path=link_path,
            tcp_port=tcp_port,
            sent_log=self.sent_log,
        )
        await modem.start()
        for path in silent_ports:
            await modem.add_silent_port(path)
        self.modems.append(modem)
        self._by_number[number_key(msisdn)] = modem
        log.info("sim.modem.added", modem=modem_id, profile=profile, url=modem.url)
        return modem

    def add_handset(
        self,
        number: str,
        *,
        report: str | Mapping[str, float] = "delivered",
        report_delay: float | tuple[float, float] = 5.0,
        reports: bool = True,
        pending_first: bool = False,
        replies: Sequence[str] = (),
        reply_delay: float = 2.0,
    ) -> Handset:
        """Script a number outside the simulation (replaces an earlier script for it)."""
        if not number_key(number):
            raise ValueError(f"number: {number!r} has no digits")
        handset = Handset(
            number,
            report=report,
            report_delay=report_delay,
            reports=reports,
            pending_first=pending_first,
            replies=replies,
            reply_delay=reply_delay,
        )
        self._handsets[number_key(number)] = handset
        return handset

    def handset(self, number: str) -> Handset:
        """The handset for ``number`` (KeyError when nothing was ever sent to it)."""
        return self._handsets[number_key(number)]

    @property
    def handsets(self) -> list[Handset]:
        """Every handset, scripted or created by a send."""
        return list(self._handsets.values())

    def modem(self, key: str) -> SimModem:
        """A modem by id, MSISDN or ICCID (KeyError otherwise)."""
        for m in self.modems:
            if key in (m.id, m.iccid) or number_key(key) == number_key(m.msisdn):
                return m
        raise KeyError(key)

    @property
    def sent(self) -> list[SentRecord]:
        """Every part every modem sent, in time order."""
        return sorted((r for m in self.modems for r in m.sent), key=lambda r: r.time)

    async def close(self) -> None:
        """Stop every modem and pending delivery."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for m in self.modems:
            await m.close()

    # -- traffic ----------------------------------------------------------------------

    async def inject_inbound(
        self, to: str, sender: str, text: str, *, force_ucs2: bool = False
    ) -> int:
        """An SMS from ``sender`` (a number or an alphanumeric name) reaches modem ``to``.

        Long texts arrive as concatenated parts. Returns the number of parts.
        """
        modem = self._by_number.get(number_key(to))
        if modem is None:
            raise KeyError(f"to: no simulated modem has number {to!r}")
        pdus = encode_deliver(
            sender,
            text,
            scts=self.clock.now(),
            smsc=self.smsc,
            force_ucs2=force_ucs2,
            concat_ref=self.rng.randrange(256),
        )
        for pdu in pdus:
            modem.deliver(pdu, PduKind.DELIVER)
        log.info("sim.inbound", modem=modem.id, parts=len(pdus))
        return len(pdus)

    def route(self, modem: SimModem, part: OutgoingPart, mr: int, sent_at: datetime) -> None:
        """Carry a part ``modem`` just sent (called as it answers +CMGS)."""
        target = self._by_number.get(number_key(part.recipient))
        if target is not None:
            self._to_modem(modem, target, part)
            if part.status_report:
                self._spawn(self._report(modem, part.recipient, mr, sent_at, 0.0, 0x00))
            return
        handset = self._handsets.get(number_key(part.recipient))
        if handset is None:
            handset = self.add_handset(part.recipient, **self.default_handset)  # type: ignore[arg-type]
        outcome = handset.choose(self.rng)
        delay = handset.delay(self.rng)
        if outcome is Outcome.DELIVERED:
            received = ReceivedPart(
                time=self.clock.now(),
                sender=modem.msisdn,
                text=part.text,
                mr=mr,
                concat_ref=part.concat_ref,
                seq=part.concat_seq,
                total=part.concat_total,
            )
            whole = handset.take(received)
            if whole is not None:
                reply = handset.reply_to(len(handset.received) - 1)
                if reply is not None:
                    self._spawn(self._reply(handset, modem, reply))
        if part.status_report and handset.reports:
            if handset.pending_first:
                self._spawn(
                    self._report(modem, part.recipient, mr, sent_at, delay / 2, STATUS_PENDING)
                )
            self._spawn(self._report(modem, part.recipient, mr, sent_at, delay, STATUS_OF[outcome]))

    def _to_modem(self, sender: SimModem, target: SimModem, part: OutgoingPart) -> None:
        if part.concat_ref is None or part.concat_total <= 1:
            parts = [part]
        else:
            key = (sender.msisdn, number_key(part.recipient), part.concat_ref, part.concat_total)
            pieces = self._partial.setdefault(key, {})
            pieces[part.concat_seq] = part
            if len(pieces) < part.concat_total:
                return
            del self._partial[key]
            parts = [pieces[i] for i in sorted(pieces)]
        text = "".join(p.text for p in parts)
        pdus = encode_deliver(
            sender.msisdn,
            text,
            scts=self.clock.now(),
            smsc=self.smsc,
            force_ucs2=part.encoding == "ucs2",
            concat_ref=part.concat_ref if len(parts) > 1 else None,
        )
        for pdu in pdus:
            target.deliver(pdu, PduKind.DELIVER)

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("sim.network.task_failed")

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report(
        self,
        modem: SimModem,
        recipient: str,
        mr: int,
        sent_at: datetime,
        delay: float,
        status: int,
    ) -> None:
        await self.clock.sleep(delay)
        pdu = encode_status_report(
            mr,
            recipient,
            scts=sent_at,
            discharge_time=self.clock.now(),
            status=status,
            smsc=self.smsc,
        )
        modem.deliver(pdu, PduKind.STATUS_REPORT)

    async def _reply(self, handset: Handset, modem: SimModem, text: str) -> None:
        await self.clock.sleep(handset.reply_delay)
        await self.inject_inbound(to=modem.msisdn, sender=handset.number, text=text)
