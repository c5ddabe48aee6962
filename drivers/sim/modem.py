"""One simulated modem: identity, settings, storage, faults, transports and its AT engine.

The modem owns its state; the command handlers (:mod:`drivers.sim.commands`) read and
change it, the network (:mod:`drivers.sim.network`) hands it inbound SMS and status
reports, and its transports carry the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from drivers.clock import Clock
from drivers.pdu import Deliver as PduDeliver
from drivers.pdu import StatusReport as PduStatusReport
from drivers.pdu import decode
from drivers.sim import commands
from drivers.sim.engine import AtCommand, AtEngine
from drivers.sim.errors import CmeError, CmsError
from drivers.sim.events import SimEvent, Waiters
from drivers.sim.faults import Faults, RegStat
from drivers.sim.personalities import Personality
from drivers.sim.records import OutgoingPart, SentRecord
from drivers.sim.state import Settings, SimCard, SimState
from drivers.sim.storage import MessageStore, PduKind, Stat, StoredMessage, StoreFull
from drivers.sim.transport import Endpoint, PtyEndpoint, TcpEndpoint

if TYPE_CHECKING:
    from datetime import datetime

log = structlog.get_logger(__name__)

# 27.005: without +CNMA in time the ME turns routing off (+CNMI mt and ds to 0).
CNMA_TIMEOUT = 15.0
# A modem keeps between this many and twice this many recent events.
EVENT_HISTORY = 10_000
# A held send (faults.hold_sends) fails after this long, as a modem gives up on the network;
# a held prompt (faults.hold_prompt) is printed after it at the latest.
HOLD_LIMIT_SECONDS = 3600.0


class Network(Protocol):
    """What a modem needs from the network it is attached to."""

    clock: Clock
    smsc: str

    def route(self, modem: SimModem, part: OutgoingPart, mr: int, sent_at: datetime) -> None:
        """Carry a part the modem just sent to its recipient."""
        ...


@dataclass(frozen=True)
class Identity:
    """Who a modem is: the numbers a driver reads from it."""

    modem_id: str
    msisdn: str
    iccid: str
    imsi: str
    imei: str


class SimModem:
    """A simulated modem speaking AT over a pty and/or a TCP port."""

    def __init__(
        self,
        *,
        network: Network,
        identity: Identity,
        personality: Personality,
        faults: Faults,
        rng: random.Random,
        pin: str | None = None,
        puk: str = "12345678",
        transport: str = "pty",
        link_path: str | None = None,
        tcp_port: int = 0,
        sent_log: Path | None = None,
    ) -> None:
        if transport not in ("pty", "tcp", "both"):
            raise ValueError(f"transport: expected 'pty', 'tcp' or 'both', got {transport!r}")
        self.network = network
        self.clock = network.clock
        self.identity = identity
        self.personality = personality
        self.faults = faults
        self.rng = rng
        self.sim = SimCard(
            iccid=identity.iccid,
            imsi=identity.imsi,
            pin=pin,
            puk=puk,
            state=SimState.PIN if pin else SimState.READY,
        )
        self.settings = Settings.defaults(personality, network.smsc)
        self.stores = {
            name: MessageStore(name, capacity, personality.index_base)
            for name, capacity in personality.capacities.items()
        }
        self.registration = RegStat.HOME
        self.sent: list[SentRecord] = []
        self.events: list[SimEvent] = []
        self.sim_busy_until = 0.0
        # Prepaid credit: what a USSD balance check answers; each SMS part costs sms_cost.
        self.balance = 5.0
        self.sms_cost = 0.1
        self.ussd_delay = 0.2  # seconds from AT+CUSD's OK to the network's answer
        self.clip = False  # AT+CLIP=1: the caller's number follows each RING
        self._call: asyncio.Task[None] | None = None
        self._mr = rng.randrange(256)
        self._inbound: deque[tuple[bytes, PduKind]] = deque()
        self._ack_pending: tuple[bytes, PduKind] | None = None
        self._ack_timer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._noise_task: asyncio.Task[None] | None = None
        self._waiters = Waiters()
        self._sent_log = sent_log
        self.engine = AtEngine(self)
        self.pty: PtyEndpoint | None = None
        self.tcp: TcpEndpoint | None = None
        if transport in ("pty", "both"):
            self.pty = PtyEndpoint(self.engine.feed, link_path)
        if transport in ("tcp", "both"):
            self.tcp = TcpEndpoint(self.engine.feed, port=tcp_port)
        # A multi-port stick's other interfaces (diagnostics, NMEA): ptys that never answer.
        self.silent_ports: list[PtyEndpoint] = []

    # -- identity and addresses -------------------------------------------------------

    @property
    def id(self) -> str:
        """The modem's name in logs, the CLI and the control API."""
        return self.identity.modem_id

    @property
    def msisdn(self) -> str:
        """Its phone number (E.164)."""
        return self.identity.msisdn

    @property
    def iccid(self) -> str:
        """Its SIM's ICCID."""
        return self.identity.iccid

    @property
    def imsi(self) -> str:
        """Its SIM's IMSI."""
        return self.identity.imsi

    @property
    def imei(self) -> str:
        """Its IMEI."""
        return self.identity.imei

    @property
    def endpoints(self) -> list[Endpoint]:
        """Its transports (pty first)."""
        return [e for e in (self.pty, self.tcp) if e is not None]

    @property
    def url(self) -> str:
        """What a client opens: the pty path (or its symlink), else the socket:// URL."""
        return self.endpoints[0].url

    @property
    def tcp_url(self) -> str | None:
        """``socket://127.0.0.1:PORT`` when the modem has a TCP port."""
        return self.tcp.url if self.tcp else None

    @property
    def pty_path(self) -> str | None:
        """The ``/dev/pts/N`` device (not the symlink) when the modem has a pty."""
        return self.pty.device if self.pty else None

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the ports and start answering."""
        for endpoint in self.endpoints:
            await endpoint.open()
        self.engine.start()
        self._restart_noise()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background for this modem (cancelled by :meth:`close`)."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def add_silent_port(self, link_path: str) -> str:
        """Another interface of this stick that does not speak AT; returns its path."""
        endpoint = PtyEndpoint(lambda _data: None, link_path)
        await endpoint.open()
        self.silent_ports.append(endpoint)
        return endpoint.url

    async def close(self) -> None:
        """Stop answering and remove the ports."""
        await self.engine.stop()
        for timer in (self._ack_timer, self._noise_task):
            if timer is not None:
                timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for endpoint in [*self.endpoints, *self.silent_ports]:
            endpoint.close()

    def disconnect(self) -> None:
        """Fault: the port disappears (pty closed and its path gone, TCP reset)."""
        for endpoint in [*self.endpoints, *self.silent_ports]:
            endpoint.close()
        self.record("disconnect", "")

    async def reconnect(self, *, reboot: bool = False) -> None:
        """The port comes back (a pty gets a new /dev/pts/N; the symlink follows it)."""
        for endpoint in [*self.endpoints, *self.silent_ports]:
            await endpoint.open()
        self.record("reconnect", self.url)
        if reboot:
            await self.reboot()

    async def reboot(self) -> None:
        """Fault: a spontaneous reboot; prints the boot URCs and forgets CMGF, CNMI, ATE..."""
        await self.engine.restart()
        self.settings = Settings.defaults(self.personality, self.network.smsc)
        if self.sim.pin is not None and self.sim.state is SimState.READY:
            self.sim.state = SimState.PIN
        self._ack_pending = None
        boot = list(self.personality.boot_urcs)
        if self.sim.state is not SimState.READY:
            boot = [u if u != "+CPIN: READY" else f"+CPIN: {self.sim.state}" for u in boot]
            boot = [u for u in boot if u not in self.personality.after_pin_urcs]
        for urc in boot:
            self.engine.emit_urc([urc])
        self.record("reboot", "")
        self.drain_inbound()

    # -- engine host ------------------------------------------------------------------

    def echo_enabled(self) -> bool:
        return self.settings.echo or self.faults.force_echo

    def cmee(self) -> int:
        return self.settings.cmee

    def unknown_command_final(self) -> str | None:
        return self.personality.unknown_command_final

    def responsive(self) -> bool:
        return not self.faults.unresponsive

    def garbage(self) -> bytes:
        if self.faults.garbage_rate and self.rng.random() < self.faults.garbage_rate:
            return self.garbage_bytes()
        return b""

    def write(self, data: bytes) -> None:
        for endpoint in self.endpoints:
            endpoint.write(data)

    def record(self, kind: str, detail: str) -> None:
        self.events.append(SimEvent(self.clock.now(), kind, detail))
        if len(self.events) > 2 * EVENT_HISTORY:
            # Bounded: a long-running simulator must not grow without limit (tests need few).
            del self.events[:EVENT_HISTORY]
        self._waiters.notify()

    async def execute(self, command: AtCommand) -> list[str]:
        return await commands.dispatch(self, command)

    # -- faults and noise -------------------------------------------------------------

    def set_fault(self, **changes: object) -> None:
        """Change fault settings (see :class:`Faults`); ValueError for a bad one."""
        self.faults.update(**changes)
        self.record("faults", json.dumps(self.faults.as_dict()))
        if "noise_interval" in changes:
            self._restart_noise()

    def _restart_noise(self) -> None:
        if self._noise_task is not None:
            self._noise_task.cancel()
            self._noise_task = None
        if self.faults.noise_interval > 0:
            self._noise_task = asyncio.create_task(self._noise_loop())

    async def _noise_loop(self) -> None:
        while True:
            await self.clock.sleep(self.faults.noise_interval)
            self.noise()

    def garbage_bytes(self, count: int = 8) -> bytes:
        """Random line noise: bytes outside printable ASCII, without CR or Ctrl-Z."""
        return bytes(self.rng.choice(range(0x80, 0x100)) for _ in range(count))

    def inject_garbage(self, data: bytes | None = None) -> None:
        """Fault: put garbage bytes on the line now."""
        self.write(data if data is not None else self.garbage_bytes())

    def emit_urc(self, *lines: str) -> None:
        """Print an unsolicited result now (e.g. ``RING``, ``^RSSI: 12``)."""
        self.engine.emit_urc(lines)

    def incoming_call(self, number: str, *, ring_every: float = 3.0, rings: int = 10) -> None:
        """Someone calls this SIM: RING (and +CLIP with AT+CLIP=1) until ATH or ``rings``."""
        if self._call is not None and not self._call.done():
            raise ValueError("number: a call is already ringing")
        self.record("call", number)
        self._call = asyncio.create_task(self._ring(number, ring_every, rings))
        self._tasks.add(self._call)
        self._call.add_done_callback(self._tasks.discard)

    async def _ring(self, number: str, ring_every: float, rings: int) -> None:
        for _ in range(rings):
            lines = ["RING"]
            if self.clip:
                kind = 145 if number.startswith("+") else 129
                lines.append(f'+CLIP: "{number}",{kind}')
            self.emit_urc(*lines)
            await self.clock.sleep(ring_every)
        self.record("call_ended", "caller gave up")

    def hang_up(self) -> None:
        """ATH: the ringing call ends (busy for the caller)."""
        call, self._call = self._call, None
        if call is not None and not call.done():
            call.cancel()
            self.record("hangup", "")

    def urc_after_next_echo(self, *lines: str) -> None:
        """Print an unsolicited result between the next command's echo and its result."""
        self.engine.urc_after_next_echo(lines)

    def noise(self) -> None:
        """Print one of the personality's noise URCs, chosen by the modem's RNG.

        Huawei's periodic ``^`` URCs stay quiet after ``AT^CURC=0``.
        """
        urcs = self.personality.noise_urcs
        if not self.settings.curc:
            urcs = tuple(u for u in urcs if not u.startswith("^"))
        self.emit_urc(self.rng.choice(urcs))

    def set_registration(self, stat: RegStat) -> None:
        """Fault: registration lost or regained; URCs per AT+CREG / AT+CEREG."""
        self.registration = RegStat(stat)
        self.report_registration()
        self.drain_inbound()

    def report_registration(self) -> None:
        """Print +CREG / +CEREG URCs for the current state, where enabled."""
        stat = int(self.network_registration())
        if self.settings.creg:
            self.emit_urc(commands.creg_line("+CREG", self.settings.creg, stat))
        if self.personality.supports_cereg and self.settings.cereg:
            self.emit_urc(commands.creg_line("+CEREG", self.settings.cereg, stat))

    def network_registration(self) -> RegStat:
        """What +CREG? reports: not registered without radio or SIM."""
        if self.settings.cfun != 1 or self.sim.state is not SimState.READY:
            return RegStat.NOT_REGISTERED
        return self.registration

    # -- sending -----------------------------------------------------------------------

    def sim_busy(self) -> bool:
        """Whether the SIM is still busy after a PIN was entered."""
        return self.clock.timestamp() < self.sim_busy_until

    def require_sim(self, *, sms: bool) -> None:
        """Raise the error a real modem gives when the SIM is locked or busy."""
        state = self.sim.state
        if state is SimState.PIN:
            raise CmsError(311) if sms else CmeError(11)
        if state is SimState.PUK:
            raise CmsError(316) if sms else CmeError(12)
        if state is SimState.BLOCKED:
            raise CmsError(313) if sms else CmeError(13)
        if self.sim_busy():
            raise CmsError(314) if sms else CmeError(14)

    def next_mr(self) -> int:
        """The modem's own TP-MR: increments per part, mod 256."""
        self._mr = (self._mr + 1) % 256
        return self._mr

    async def before_prompt(self) -> None:
        """Hold the ``> `` prompt while ``faults.hold_prompt`` is set."""
        if not self.faults.hold_prompt:
            return
        self.record("prompt_held", "")
        with contextlib.suppress(TimeoutError):
            await self._waiters.wait_for(
                lambda: not self.faults.hold_prompt, HOLD_LIMIT_SECONDS, "hold_prompt cleared"
            )

    async def send_part(self, part: OutgoingPart) -> int:
        """Send one part: latency, injected failures, the log entry; returns the TP-MR."""
        self.require_sim(sms=True)
        if self.network_registration() not in (RegStat.HOME, RegStat.ROAMING):
            raise CmsError(331)
        if self.faults.hold_sends:
            self.record("held", part.recipient)
            try:
                await self._waiters.wait_for(
                    lambda: not self.faults.hold_sends, HOLD_LIMIT_SECONDS, "hold_sends cleared"
                )
            except TimeoutError:
                raise CmsError(500) from None  # what a modem says when the network never answers
        low, high = self.faults.latency
        delay = self.rng.uniform(low, high) if high > 0 else 0.0
        self.record("latency", f"{delay:.3f}")
        if delay > 0:
            await self.clock.sleep(delay)
        if self.faults.cms_error_rate and self.rng.random() < self.faults.cms_error_rate:
            codes = self.faults.cms_error_codes or self.personality.default_fault_codes
            raise CmsError(self.rng.choice(codes))
        mr = self.next_mr()
        now = self.clock.now()
        record = SentRecord(
            time=now,
            modem=self.id,
            iccid=self.iccid,
            sender=self.msisdn,
            recipient=part.recipient,
            text=part.text,
            encoding=part.encoding,
            mr=mr,
            part=part.concat_seq,
            parts=part.concat_total,
            concat_ref=part.concat_ref,
        )
        self.sent.append(record)
        if self._sent_log is not None:
            with self._sent_log.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record.as_dict()) + "\n")
        log.info(
            "sim.sms.sent", modem=self.id, mr=mr, part=part.concat_seq, parts=part.concat_total
        )
        self.network.route(self, part, mr, now)
        self.balance = round(self.balance - self.sms_cost, 4)
        self.record("sent", f"{mr}")
        return mr

    async def wait_sent(
        self,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 (plain seconds: the test API)
    ) -> list[SentRecord]:
        """Wait until at least ``count`` parts were sent; returns the log."""
        await self._waiters.wait_for(
            lambda: len(self.sent) >= count, timeout, f"{count} parts sent by {self.id}"
        )
        return list(self.sent)

    async def wait_event(
        self,
        kind: str,
        *,
        count: int = 1,
        contains: str = "",
        timeout: float = 5.0,  # noqa: ASYNC109 (plain seconds: the test API)
    ) -> SimEvent:
        """Wait for the ``count``-th event of ``kind`` (whose detail contains ``contains``)."""

        def matching() -> list[SimEvent]:
            return [e for e in self.events if e.kind == kind and contains in e.detail]

        await self._waiters.wait_for(
            lambda: len(matching()) >= count, timeout, f"{count} {kind!r} events on {self.id}"
        )
        return matching()[count - 1]

    # -- receiving ------------------------------------------------------------------

    def deliver(self, pdu: bytes, kind: PduKind) -> None:
        """The network hands the modem an SMS-DELIVER or SMS-STATUS-REPORT PDU."""
        self._inbound.append((pdu, kind))
        self.drain_inbound()

    @property
    def held_inbound(self) -> int:
        """Inbound PDUs the network holds for this modem (full store, no radio...)."""
        return len(self._inbound)

    def drain_inbound(self) -> None:
        """Hand held inbound PDUs to the modem while it can take them."""
        if self.network_registration() not in (RegStat.HOME, RegStat.ROAMING):
            return
        if self.sim_busy():
            return
        # In order; what cannot be taken now (a full store, an unacknowledged +CMT) stays
        # held without blocking the rest (a status report need not wait for a full SM).
        held: deque[tuple[bytes, PduKind]] = deque()
        while self._inbound:
            pdu, kind = self._inbound.popleft()
            if self._ack_pending is not None or not self._accept(pdu, kind):
                held.append((pdu, kind))
        self._inbound = held
        self._waiters.notify()

    def drain_after_reply(self) -> None:
        """Drain held inbound once the current command's final result is out."""
        asyncio.get_running_loop().call_soon(self.drain_inbound)

    def _accept(self, pdu: bytes, kind: PduKind) -> bool:
        mode, mt, _bm, ds, _bfr = self.settings.cnmi
        if kind is PduKind.STATUS_REPORT:
            if ds == 1 and mode:
                self._route_direct(pdu, kind)
                return True
            if ds == 2:
                store = self.stores.get("SR") or self.stores[self.settings.cpms[2]]
                try:
                    index = store.put(StoredMessage(Stat.REC_UNREAD, pdu, kind))
                except StoreFull:
                    return False
                if mode:
                    self.emit_urc(f'+CDSI: "{store.name}",{index}')
                return True
            # ds=0: reports are not routed to the TE; the network counts it handed over.
            self.record("report-dropped", pdu.hex().upper())
            return True
        if mt == 2 and mode:
            if self.personality.cmt_also_stores:
                with contextlib.suppress(StoreFull):
                    self.stores[self.settings.cpms[2]].put(
                        StoredMessage(Stat.REC_UNREAD, pdu, kind)
                    )
            self._route_direct(pdu, kind)
            return True
        store = self.stores[self.settings.cpms[2]]
        try:
            index = store.put(StoredMessage(Stat.REC_UNREAD, pdu, kind))
        except StoreFull:
            self.record("store-full", store.name)
            return False
        if mt in (1, 3) and mode:
            self.emit_urc(f'+CMTI: "{store.name}",{index}')
        else:
            self.record("stored", f"{store.name},{index}")
        return True

    def _route_direct(self, pdu: bytes, kind: PduKind) -> None:
        if self.settings.cmgf == 0:
            tpdu_len = len(pdu) - pdu[0] - 1
            head = "+CDS: " if kind is PduKind.STATUS_REPORT else "+CMT: ,"
            self.emit_urc(f"{head}{tpdu_len}", pdu.hex().upper())
        else:
            decoded = decode(pdu)
            if isinstance(decoded, PduStatusReport):
                self.emit_urc("+CDS: " + commands.text_status_fields(decoded))
            elif isinstance(decoded, PduDeliver):
                header, body = commands.text_cmt(self, decoded)
                self.emit_urc(header, body)
        if self.settings.csms == 1:
            # Phase 2+: the TE must acknowledge with +CNMA, or the ME stops routing.
            self._ack_pending = (pdu, kind)
            self._ack_timer = asyncio.create_task(self._ack_deadline(pdu, kind))

    async def _ack_deadline(self, pdu: bytes, kind: PduKind) -> None:
        await self.clock.sleep(CNMA_TIMEOUT)
        if self._ack_pending is None:
            return
        # 27.005 +CNMI: no ack in time -> mt and ds set to 0; the network retries later.
        mode, _mt, bm, _ds, bfr = self.settings.cnmi
        self.settings.cnmi = (mode, 0, bm, 0, bfr)
        self._ack_pending = None
        self._inbound.appendleft((pdu, kind))
        self.record("cnma-timeout", "routing disabled")
        self.drain_inbound()

    def acknowledge(self) -> bool:
        """AT+CNMA: True when an acknowledgement was expected."""
        if self._ack_pending is None:
            return False
        self._ack_pending = None
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        self.record("cnma", "")
        self.drain_after_reply()
        return True

    def info(self) -> dict[str, object]:
        """A JSON-able summary for the CLI and the control API."""
        return {
            "id": self.id,
            "profile": self.personality.name,
            "msisdn": self.msisdn,
            "iccid": self.iccid,
            "imsi": self.imsi,
            "imei": self.imei,
            "url": self.url,
            "pty": self.pty_path,
            "link": self.pty.link_path if self.pty else None,
            "tcp": self.tcp_url,
            "port_open": all(e.is_open for e in self.endpoints),
            "sim": str(self.sim.state),
            "registration": int(self.registration),
            "sent": len(self.sent),
            "held_inbound": self.held_inbound,
            "storage": {n: [s.used, s.capacity] for n, s in self.stores.items()},
            "faults": self.faults.as_dict(),
        }
