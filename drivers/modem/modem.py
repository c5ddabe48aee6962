"""A GSM modem: life cycle, health, sending a PDU, inbound hand-off.

One supervisor task owns the port: it opens, initialises, watches health on a timer and
reconnects with capped exponential backoff. One inbound task owns reading stored SMS. Sends
run on the caller's task and queue on the channel (one command in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import TypeVar

import structlog

from drivers.at import (
    AtChannel,
    AtError,
    AtTimeout,
    CmeError,
    CmsError,
    PortGone,
    PromptAborted,
    Urc,
)
from drivers.clock import Clock
from drivers.modem import parsing
from drivers.modem.inbound import Inbound, InboundHandler, Job, ReportHandler
from drivers.modem.init import Initialiser, InitResult
from drivers.modem.types import (
    ModemInfo,
    ModemNotReady,
    ModemState,
    NeedsHuman,
    PinRejected,
    SendAborted,
    SendOutcomeUnknown,
)
from drivers.modem.ussd import UssdAnswer, UssdError, parse_cusd
from drivers.pdu import encode_submit
from drivers.profiles import GENERIC, PROFILES, Profile, get_profile

log = structlog.get_logger(__name__)
T = TypeVar("T")

StateHandler = Callable[[ModemState, str], None]
CallHandler = Callable[[str | None], None]  # the caller's number, when the network gave it

# A USSD code: digits, '*' and '#' (TS 22.030), short enough for one request.
_USSD_CODE = re.compile(r"^[0-9*#+]{1,40}$")
STORAGE_ALARM = 0.8  # DESIGN.md: a full store makes +CMTI stop; alarm at 80 %
_SERVING = (ModemState.READY, ModemState.DEGRADED)


class _Unresponsive(Exception):
    """The modem stopped answering: reset it and reopen the port."""


class Modem:
    """One modem on one port (a device path or a ``socket://`` URL)."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        profile: str | Profile = "auto",
        pin: str | None = None,
        pins: Mapping[str, str] | None = None,
        clock: Clock,
        health_interval: float = 30.0,
        sweep_interval: float = 300.0,
        baudrate: int = 115200,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        sim_busy_wait: float = 30.0,
        open_timeout: float = 10.0,
        hangup_delay: float = 0.0,
    ) -> None:
        self.url = url
        self.name = name
        self._auto = profile == "auto"
        self.profile: Profile = (
            GENERIC
            if self._auto
            else profile
            if isinstance(profile, Profile)
            else get_profile(profile)
        )
        self._pin = pin
        # ICCID -> PIN, looked up with the ICCID read before any PIN is tried.
        self._pins = dict(pins or {})
        # The SIM and PIN of the last PIN failure (None: no PIN was configured for it).
        self._pin_failure: tuple[str | None, str | None] | None = None
        self._pin_changed = asyncio.Event()  # apply_pins gave the failed SIM a new PIN
        self._clock = clock
        self.health_interval = health_interval
        self.sweep_interval = sweep_interval
        self._baudrate = baudrate
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._sim_busy_wait = sim_busy_wait
        self._open_timeout = open_timeout
        self.state = ModemState.OPENING
        self.state_reason = "not started"
        self.info = ModemInfo()
        self._log = log.bind(modem=name)
        self._state_handlers: list[StateHandler] = []
        self._inbound = Inbound(name)
        self._jobs: asyncio.Queue[Job] = asyncio.Queue()
        self._channel: AtChannel | None = None
        self._init: InitResult | None = None
        self._wake = asyncio.Event()
        self._lost: str | None = None
        self._reboot: str | None = None
        self._probe_now = False
        self._state_changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._ussd_waiters: list[asyncio.Future[UssdAnswer]] = []
        self._hangup_delay = hangup_delay
        self._call_handlers: list[CallHandler] = []
        self._ringing = False
        self._caller: str | None = None
        self._ussd_lock = asyncio.Lock()

    # -- public API ---------------------------------------------------------------------

    @property
    def identity(self) -> str | None:
        """ICCID, else IMEI (DESIGN: the SIM is the unit); None before initialisation."""
        return self.info.iccid or self.info.imei

    def on_state_change(self, cb: StateHandler) -> None:
        """Call ``cb(state, reason)`` on every state change."""
        self._state_handlers.append(cb)

    def on_call(self, cb: CallHandler) -> None:
        """Call ``cb(caller)`` when an incoming call has been hung up (``caller`` may be None)."""
        self._call_handlers.append(cb)

    def set_inbound_handler(self, cb: InboundHandler) -> None:
        """Hand each inbound SMS to ``cb``; the SMS is deleted only after ``cb`` returns."""
        self._inbound.on_sms = cb

    def set_report_handler(self, cb: ReportHandler) -> None:
        """Hand each decoded status report to ``cb`` (then the stored copy is deleted)."""
        self._inbound.on_report = cb

    async def start(self) -> None:
        """Open and initialise in the background; returns at once."""
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._supervise(), name=f"modem-{self.name}"),
            asyncio.create_task(self._work_inbound(), name=f"modem-{self.name}-inbound"),
        ]

    def apply_pins(self, pins: Mapping[str, str]) -> bool:
        """Take a new ICCID -> PIN map (a config reload); True if it started one new attempt.

        A modem FAILED for its SIM's PIN (none configured, or rejected) is re-initialised once
        when the map gives that SIM a PIN different from the one that failed: an admin changed
        the config. The same PIN is never tried again (three wrong PINs lock the SIM).
        """
        self._pins = dict(pins)
        failure = self._pin_failure
        if failure is None or self.state is not ModemState.FAILED or not self._tasks:
            return False
        iccid, tried = failure
        pin = self._pins.get(iccid or "", self._pin)
        if pin is None or pin == tried:
            return False
        self._pin_failure = None
        self._log.info("modem.pin_changed", iccid=iccid, action="one new attempt")
        self._pin_changed.set()
        return True

    async def wait_ready(self, timeout: float) -> None:  # noqa: ASYNC109 (public contract)
        """Wait until READY or DEGRADED; ModemNotReady at once if FAILED; TimeoutError."""
        async with asyncio.timeout(timeout):
            while self.state not in _SERVING:
                if self.state is ModemState.FAILED:
                    raise ModemNotReady(self.name, self.state, self.state_reason)
                self._state_changed.clear()
                await self._state_changed.wait()

    async def wait_state(self, state: ModemState, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until the modem is in ``state`` (tests and tools); TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            while self.state is not state:
                self._state_changed.clear()
                await self._state_changed.wait()

    async def stop(self) -> None:
        """Cancel the tasks and close the port."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            # Cancel until it is done: a cancel that lands as an asyncio.timeout expires can
            # come out as TimeoutError (Python 3.11) and be handled as an I/O timeout.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
        await self._close_channel()
        self._log.info("modem.stopped")

    async def send_pdu(
        self, pdu_hex: str, length: int, *, before_submit: Callable[[], bool] | None = None
    ) -> int:
        """``AT+CMGS=<length>``, PDU + Ctrl-Z at the prompt, return the TP-MR.

        Raises CmsError / CmeError (the modem refused), ModemNotReady, PortGone or AtTimeout
        (nothing was sent), SendAborted (``before_submit`` said no at the prompt), and
        SendOutcomeUnknown when Ctrl-Z was written but no answer came.
        """
        channel = self._serving_channel()
        try:
            response = await channel.submit(
                f"AT+CMGS={length}",
                pdu_hex,
                prefixes=("+CMGS:",),
                before_submit=before_submit,
            )
        except PromptAborted as exc:
            raise SendAborted(str(exc)) from exc
        except AtTimeout as exc:
            if exc.written:
                self._ask_probe()
                raise SendOutcomeUnknown(
                    f"no answer after Ctrl-Z within {exc.timeout:g} s"
                ) from exc
            self._ask_probe()
            raise
        except PortGone as exc:
            if exc.written:
                raise SendOutcomeUnknown(f"port lost after Ctrl-Z: {exc.reason}") from exc
            raise
        value = response.first("+CMGS:")
        try:
            mr = parsing.parse_cmgs(value or "")
        except parsing.ParseError as exc:
            raise SendOutcomeUnknown(f"modem answered OK without a TP-MR: {exc}") from exc
        self._log.info("sms.sent", mr=mr, length=length)
        return mr

    async def send_text(self, number: str, text: str) -> list[int]:
        """Encode ``text`` (drivers.pdu) and send every part; return the TP-MRs."""
        parts = encode_submit(number, text)
        return [await self.send_pdu(part.hex(with_smsc=True), part.length) for part in parts]

    async def ussd(self, code: str, *, limit: float = 30.0) -> str:
        """Run a USSD code (``AT+CUSD=1,"<code>",15``) and return the network's answer, decoded.

        Raises UssdError (a bad code, or the network refused or gave no text), ModemNotReady,
        AtError from the modem, and TimeoutError when no answer came within ``limit`` s.
        """
        if not _USSD_CODE.match(code):
            raise UssdError("code", "expected digits, '*' and '#' (e.g. *111#)")
        async with self._ussd_lock:  # one USSD session at a time per modem
            channel = self._serving_channel()
            waiter: asyncio.Future[UssdAnswer] = asyncio.get_running_loop().create_future()
            self._ussd_waiters.append(waiter)
            try:
                async with asyncio.timeout(limit):
                    response = await channel.command(f'AT+CUSD=1,"{code}",15', prefixes=("+CUSD:",))
                    # Some firmware answers inside the command, most as a URC afterwards.
                    line = response.first("+CUSD:")
                    answer = parse_cusd(line) if line is not None else await waiter
            finally:
                if waiter in self._ussd_waiters:
                    self._ussd_waiters.remove(waiter)
        if answer.status == 1:
            # The network wants a reply (a menu): end the session, keep the text.
            with contextlib.suppress(AtError, PortGone):
                await channel.command("AT+CUSD=2")
        if answer.status not in (0, 1) or not answer.text:
            raise UssdError("+CUSD", f"network ended the session (status {answer.status})")
        self._log.info("modem.ussd", code=code, status=answer.status)
        return answer.text

    async def sweep(self) -> None:
        """Queue a sweep of stored messages (``AT+CMGL=4``) now."""
        self._jobs.put_nowait(Job("sweep"))

    # -- state ------------------------------------------------------------------------

    def _set_state(self, state: ModemState, reason: str) -> None:
        if state is self.state and reason == self.state_reason:
            return
        previous = self.state
        self.state, self.state_reason = state, reason
        self._log.info("modem.state", state=str(state), previous=str(previous), reason=reason)
        self._state_changed.set()
        for cb in self._state_handlers:
            try:
                cb(state, reason)
            except Exception:
                self._log.exception("modem.state_handler_failed")

    def _serving_channel(self) -> AtChannel:
        channel = self._channel
        if channel is None or not channel.is_open or self.state not in _SERVING:
            raise ModemNotReady(self.name, self.state, self.state_reason)
        return channel

    def _ask_probe(self) -> None:
        self._probe_now = True
        self._wake.set()

    # -- supervisor -------------------------------------------------------------------

    async def _supervise(self) -> None:
        attempt = 0
        while True:
            reason = await self._session()
            if self.state is ModemState.FAILED:
                # Never retried on its own: only a human's new PIN (apply_pins) is one more try.
                await self._pin_changed.wait()
                self._pin_changed.clear()
                attempt = 0
                continue
            self._set_state(ModemState.GONE, reason)
            delay = min(self._backoff_max, self._backoff_initial * 2**attempt)
            attempt = attempt + 1 if self._init is None else 0
            self._init = None
            self._set_state(ModemState.RECONNECTING, f"{reason}; retry in {delay:g} s")
            await self._clock.sleep(delay)

    async def _session(self) -> str:
        """Open, initialise and serve until something breaks; return why it ended."""
        self._set_state(ModemState.OPENING, f"opening {self.url}")
        self._lost = None
        self._reboot = None
        try:
            channel = await AtChannel.open(
                self.url,
                baudrate=self._baudrate,
                open_timeout=self._open_timeout,
                name=self.name,
                extra_finals=self.profile.extra_finals,
                ignore=self.profile.ignore_urcs,
                timeouts=self.profile.timeouts,
            )
        except PortGone as exc:
            return exc.reason
        self._channel = channel
        channel.on_lost(self._on_lost)
        self._subscribe(channel)
        try:
            await self._initialise(channel, "port open")
            await self._serve(channel)
        except NeedsHuman as exc:
            self._log.error("modem.needs_human", reason=exc.reason)
            if isinstance(exc, PinRejected):
                if exc.iccid:  # the SIM to add a PIN for, shown with the alarm
                    self.info = dataclasses.replace(self.info, iccid=exc.iccid)
                if not exc.wants_puk:
                    self._pin_failure = (exc.iccid, self._pins.get(exc.iccid or "", self._pin))
            self._set_state(ModemState.FAILED, exc.reason)
            await self._close_channel()
            return exc.reason
        except _Unresponsive as exc:
            await self._reset(channel)
            return str(exc)
        except PortGone as exc:
            return exc.reason
        except AtError as exc:
            return f"initialisation failed: {exc}"
        finally:
            await self._close_channel()
        return "session ended"

    async def _initialise(self, channel: AtChannel, why: str) -> None:
        self._set_state(ModemState.INITIALISING, why)
        self._init = None
        initialiser = Initialiser(
            channel,
            profile=None if self._auto else self.profile,
            pin=self._pin,
            pins=self._pins,
            clock=self._clock,
            busy_wait=self._sim_busy_wait,
            name=self.name,
        )
        try:
            result = await initialiser.run()
        except AtTimeout as exc:
            raise _Unresponsive(f"no answer during initialisation: {exc}") from exc
        self._init = result
        self.profile = result.profile
        self.info = result.info
        self._reboot = None
        await self._health(channel)
        self._jobs.put_nowait(Job("sweep"))

    async def _serve(self, channel: AtChannel) -> None:
        now = self._clock.timestamp
        next_health = now() + self.health_interval
        next_sweep = now() + self.sweep_interval
        while True:
            if self._lost is not None:
                raise PortGone(self._lost)
            if self._reboot is not None:
                marker, self._reboot = self._reboot, None
                if await self._forgot_settings(channel):
                    await self._initialise(channel, f"modem rebooted ({marker})")
                    next_health = now() + self.health_interval
                    continue
            if self._probe_now or now() >= next_health:
                self._probe_now = False
                await self._health(channel)
                next_health = now() + self.health_interval
            if now() >= next_sweep:
                self._jobs.put_nowait(Job("sweep"))
                next_sweep = now() + self.sweep_interval
            await self._sleep_or_wake(min(next_health, next_sweep) - now())

    async def _sleep_or_wake(self, seconds: float) -> None:
        if self._wake.is_set():
            self._wake.clear()
            return
        sleeper = asyncio.ensure_future(self._clock.sleep(max(0.0, seconds)))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
            self._wake.clear()

    async def _forgot_settings(self, channel: AtChannel) -> bool:
        # A boot URC may be a late one from the start we just handled: only a modem that
        # lost what init set really rebooted (DESIGN: reboots forget +CMGF/+CNMI). +CMEE
        # is checked too: some firmware powers on with our very +CNMI.
        assert self._init is not None
        expected = {
            "AT+CMEE?": "1",
            "AT+CMGF?": "0",
            "AT+CNMI?": self._init.cnmi.partition("=")[2],
        }
        for command, value in expected.items():
            try:
                answer = (await channel.command(command)).first(command[2:-1] + ":")
            except AtError:
                return True
            if (answer or "").replace(" ", "") != value.replace(" ", ""):
                return True
        return False

    async def _health(self, channel: AtChannel) -> None:
        """Signal, registration, operator, storage use: one look, between sends."""
        try:
            signal = await self._value(channel, "AT+CSQ", parsing.parse_csq)
            registration = await self._value(channel, "AT+CREG?", parsing.parse_creg)
            if self.profile.uses_cereg and not parsing.is_registered(registration or ""):
                # LTE-only modules register in +CEREG while +CREG says not registered.
                lte = await self._value(channel, "AT+CEREG?", parsing.parse_creg)
                registration = lte if lte and parsing.is_registered(lte) else registration
            cops = await self._value(channel, "AT+COPS?", str)
            operator = parsing.parse_cops(cops) if cops is not None else None
            technology = parsing.parse_cops_technology(cops) if cops is not None else None
            storage = await self._value(channel, "AT+CPMS?", parsing.parse_cpms)
        except AtTimeout as exc:
            raise _Unresponsive(f"modem stopped answering ({exc.command})") from exc
        changes: dict[str, object] = {
            "signal_dbm": signal,
            "operator": operator,
            "technology": technology,
        }
        if registration is not None:
            changes["registration"] = registration
        if storage is not None:
            _memory, used, total = storage
            changes.update(storage_used=used, storage_total=total)
            if total and used / total >= STORAGE_ALARM:
                self._log.warning("modem.storage_high", used=used, total=total)
        self.info = dataclasses.replace(self.info, **changes)  # type: ignore[arg-type]
        self._apply_registration(initialising=True)

    def _apply_registration(self, *, initialising: bool = False) -> None:
        # A +CREG URC during initialisation must not declare the modem ready early.
        allowed = (*_SERVING, ModemState.INITIALISING) if initialising else _SERVING
        if self.state not in allowed:
            return
        word = self.info.registration
        if parsing.is_registered(word):
            self._set_state(ModemState.READY, f"registered ({word})")
        else:
            self._set_state(ModemState.DEGRADED, f"not registered ({word})")

    async def _value(self, channel: AtChannel, command: str, parse: Callable[[str], T]) -> T | None:
        try:
            response = await channel.command(command)
        except (CmeError, CmsError) as exc:
            self._log.info("modem.probe_failed", command=command, final=exc.final)
            return None
        except AtTimeout:
            raise
        except AtError as exc:
            self._log.info("modem.probe_failed", command=command, final=exc.final)
            return None
        prefix = command[2:].rstrip("?") + ":"
        value = response.first(prefix)
        if value is None:
            return None
        try:
            return parse(value)
        except parsing.ParseError as exc:
            self._log.warning("modem.probe_unreadable", command=command, field=exc.field)
            return None

    async def _reset(self, channel: AtChannel) -> None:
        # Soft reset, then the port is reopened by the reconnect loop.
        self._log.warning("modem.reset", command=self.profile.reset_command)
        with contextlib.suppress(AtError, PortGone):
            await channel.command(self.profile.reset_command)

    async def _close_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    # -- URCs -------------------------------------------------------------------------

    def _subscribe(self, channel: AtChannel) -> None:
        channel.subscribe("+CMTI:", self._on_stored)
        channel.subscribe("+CDSI:", self._on_stored)
        channel.subscribe("+CMT:", self._on_routed)
        channel.subscribe("+CDS:", self._on_routed)
        channel.subscribe("+CREG:", self._on_registration)
        channel.subscribe("+CEREG:", self._on_registration)
        channel.subscribe("^RSSI:", self._on_rssi)
        channel.subscribe("RING", self._on_ring)
        channel.subscribe("+CUSD:", self._on_cusd)
        channel.subscribe("+CLIP:", self._on_clip)
        channel.subscribe("+CRING:", self._on_ring)
        # Every family's markers, so that a line such as "+QIND: SMS DONE" inside a command
        # is still read as a URC; the handler checks the current profile's own list.
        markers = {m for p in PROFILES.values() for m in p.reboot_markers}
        for marker in sorted(markers):
            channel.subscribe(marker, self._on_reboot_marker)

    def _on_stored(self, urc: Urc) -> None:
        try:
            memory, index = parsing.parse_mem_index(urc.args)
        except parsing.ParseError:
            self._log.warning("sms.bad_urc", line=urc.line[:200])
            return
        self._jobs.put_nowait(Job("cdsi" if urc.name == "+CDSI" else "cmti", memory, index))

    def _on_routed(self, urc: Urc) -> None:
        if urc.pdu is None:
            self._log.warning("sms.routed_without_pdu", line=urc.line[:200])
            return
        self._jobs.put_nowait(Job("cds" if urc.name == "+CDS" else "cmt", pdu=urc.pdu))

    def _on_registration(self, urc: Urc) -> None:
        try:
            word = parsing.parse_creg(urc.args, unsolicited=True)
        except parsing.ParseError:
            return
        if urc.name == "+CREG" and self.profile.uses_cereg and not parsing.is_registered(word):
            return  # LTE-only: +CREG may say "not registered" while +CEREG is fine
        self.info = dataclasses.replace(self.info, registration=word)
        self._apply_registration()

    def _on_cusd(self, urc: Urc) -> None:
        waiter = next((w for w in self._ussd_waiters if not w.done()), None)
        if waiter is None:
            self._log.info("modem.ussd_unexpected", line=urc.line[:100])
            return
        try:
            waiter.set_result(parse_cusd(urc.args))
        except UssdError as exc:
            waiter.set_exception(exc)

    def _on_ring(self, urc: Urc) -> None:
        # An SMS gateway takes no calls: hang up so the caller gets busy, not endless ringing.
        # RING repeats every few seconds: one hang-up per call.
        if self.state not in _SERVING or self._ringing:
            return
        self._ringing = True
        if self._hangup_delay <= 0:
            self._jobs.put_nowait(Job("hangup"))
            return
        task = asyncio.create_task(self._hang_up_later(), name=f"modem-{self.name}-call")
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    async def _hang_up_later(self) -> None:
        await self._clock.sleep(self._hangup_delay)
        self._jobs.put_nowait(Job("hangup"))

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)

    def _on_clip(self, urc: Urc) -> None:
        caller = parsing.parse_clip(urc.args)
        if caller is not None:
            self._caller = caller

    def _on_rssi(self, urc: Urc) -> None:
        value = parsing.first_int(urc.args)
        if value is not None:
            self.info = dataclasses.replace(self.info, signal_dbm=parsing.rssi_to_dbm(value))

    def _on_reboot_marker(self, urc: Urc) -> None:
        if self.state in _SERVING and urc.line.startswith(self.profile.reboot_markers):
            self._log.warning("modem.reboot_marker", line=urc.line[:100])
            self._reboot = urc.line
            if self._channel is not None:
                self._channel.interrupt(f"modem printed {urc.line[:40]!r}")
            self._wake.set()

    def _on_lost(self, reason: str) -> None:
        self._lost = reason
        self._wake.set()

    # -- inbound ----------------------------------------------------------------------

    async def _work_inbound(self) -> None:
        while True:
            job = await self._jobs.get()
            await self._wait_serving()
            init, channel = self._init, self._channel
            if init is None or channel is None:
                continue
            try:
                if job.kind == "hangup":
                    await self._hang_up(channel, init.profile.hangup_command)
                else:
                    await self._inbound.run(job, channel, init)
            except PortGone:
                self._log.info("sms.inbound_interrupted", job=job.kind)
            except AtTimeout:
                self._ask_probe()
            except AtError as exc:
                self._log.info("modem.job_failed", job=job.kind, final=exc.final)

    async def _hang_up(self, channel: AtChannel, command: str) -> None:
        try:
            await channel.command(command)
        finally:
            caller, self._caller, self._ringing = self._caller, None, False
        self._log.info("modem.call_missed", caller=caller)
        for cb in self._call_handlers:
            try:
                cb(caller)
            except Exception:
                self._log.exception("modem.call_handler_failed")

    async def _wait_serving(self) -> None:
        while self.state not in _SERVING:
            self._state_changed.clear()
            await self._state_changed.wait()
