"""The AT channel: one port, one command in flight, the ``> `` prompt, URC dispatch.

Like zigpy-znp's api.py: requests are matched to responses with futures, unsolicited
frames go to listeners, and this one place owns timeouts, the one-in-flight rule and the
``connection_lost`` path. Commands queue on an :class:`asyncio.Lock`, which wakes waiters
in FIFO order.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import serial_asyncio_fast
import structlog

from drivers.at.errors import AtError, AtTimeout, PortGone, PromptAborted, error_from_final
from drivers.at.framing import Framer, Line, Prompt

log = structlog.get_logger(__name__)

CTRL_Z = b"\x1a"
ESC = b"\x1b"

# TS 27.007 §5.7 / V.250 final result codes, plus ones seen on real modems.
STANDARD_FINALS = ("OK", "ERROR", "NO CARRIER", "COMMAND NOT SUPPORT", "NO DIALTONE", "BUSY")
ERROR_PREFIXES = ("+CME ERROR:", "+CMS ERROR:")
OK_FINALS = frozenset({"OK"})

# URCs a modem may print at any time. A line with one of these prefixes inside a command is
# a URC unless the command expects that prefix as its response.
KNOWN_URCS = (
    "+CMTI:",
    "+CMT:",
    "+CDS:",
    "+CDSI:",
    "+CBM:",
    "+CREG:",
    "+CGREG:",
    "+CEREG:",
    "+CUSD:",
    "+CPIN:",
    "+CFUN:",
    "+CLIP:",
    "+CRING:",
    "RING",
    "^RSSI:",
    "^BOOT",
    "RDY",
    "SMS Ready",
    "Call Ready",
)

# The PDU follows these headers on the next line (TS 27.005 §3.4.1, §3.4.3 PDU mode).
TWO_LINE_URCS = ("+CMT:", "+CDS:", "+CBM:")

# Per command class (TS 27.005 / vendor manuals): +CMGS waits for the network (SIM800
# manual: 60 s; Quectel EC25: 120 s), +COPS=? scans every band (EC25: 180 s), +CPIN after
# boot takes seconds, +CUSD waits for the network.
DEFAULT_TIMEOUTS: tuple[tuple[str, float], ...] = (
    ("AT+COPS=?", 180.0),
    ("AT+CMGS", 120.0),
    ("AT+CMSS", 120.0),
    ("AT+COPS", 120.0),
    ("AT+CUSD", 60.0),
    ("AT+CMGL", 30.0),
    ("AT+CFUN", 30.0),
    ("AT+CPIN", 15.0),
    ("AT+CMGD", 10.0),
    ("AT+CMGR", 10.0),
    ("AT+CPMS", 10.0),
    ("ATZ", 10.0),
)
DEFAULT_TIMEOUT = 5.0
PROMPT_TIMEOUT = 10.0

_COMMAND_NAME = re.compile(r"^AT([+^#$%][A-Za-z0-9_]+)", re.IGNORECASE)
_URC_NAME = re.compile(r"^([+^#$%][A-Za-z0-9_]+)\s*:")


def timeout_for(command: str, table: Iterable[tuple[str, float]] = DEFAULT_TIMEOUTS) -> float:
    """The timeout of a command's class: the first table prefix that matches it."""
    upper = command.upper()
    for prefix, seconds in table:
        if upper.startswith(prefix.upper()):
            return seconds
    return DEFAULT_TIMEOUT


def urc_name(line: str) -> str:
    """The name of an unsolicited line: ``+CMTI`` for ``+CMTI: "SM",3``, else the line."""
    m = _URC_NAME.match(line)
    return m.group(1) if m else line


def _is_hex(line: str) -> bool:
    return bool(line) and all(c in "0123456789abcdefABCDEF" for c in line)


@dataclass(frozen=True)
class AtResponse:
    """What a command answered: the information lines (no echo) and the final result."""

    command: str
    lines: tuple[str, ...]
    final: str

    def values(self, prefix: str) -> list[str]:
        """The text after ``prefix`` (e.g. ``"+CSQ:"``) on each line that has it."""
        return [ln[len(prefix) :].strip() for ln in self.lines if ln.startswith(prefix)]

    def first(self, prefix: str) -> str | None:
        """The first value for ``prefix``, or None."""
        found = self.values(prefix)
        return found[0] if found else None


@dataclass(frozen=True)
class Urc:
    """An unsolicited result: its name, the whole line, and the PDU line when it has one."""

    name: str
    line: str
    pdu: str | None = None

    @property
    def args(self) -> str:
        """The text after ``<name>:``."""
        _head, sep, rest = self.line.partition(":")
        return rest.strip() if sep else ""


UrcHandler = Callable[[Urc], None]


@dataclass
class _Pending:
    command: str
    prefixes: tuple[str, ...]
    future: asyncio.Future[AtResponse]
    prompt: asyncio.Future[None] | None = None
    payload: str | None = None
    lines: list[str] = field(default_factory=list)
    # Only a final that follows a line with this prefix counts (resync after a late answer).
    require: str | None = None


class AtChannel:
    """One AT port. Build with :meth:`open`; feed with :meth:`command` / :meth:`submit`."""

    def __init__(
        self,
        *,
        name: str = "",
        extra_finals: Iterable[str] = (),
        ignore: Iterable[str] = (),
        timeouts: Iterable[tuple[str, float]] = (),
    ) -> None:
        self.name = name
        self._finals = frozenset(STANDARD_FINALS) | frozenset(extra_finals)
        self._ignore = tuple(ignore)
        self._timeouts = (*tuple(timeouts), *DEFAULT_TIMEOUTS)
        self._framer = Framer()
        self._transport: asyncio.BaseTransport | None = None
        self._lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self._two_line: str | None = None  # header of a +CMT/+CDS URC awaiting its PDU line
        self._handlers: list[tuple[str, UrcHandler]] = []
        self._lost_handlers: list[Callable[[str], None]] = []
        self._gone: str | None = "not open"
        self._closed = asyncio.Event()
        self._attached = asyncio.Event()
        self.resync_limit = 2.0  # seconds to wait for each probe after a timeout
        self._dirty = False

    # -- connection ------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        baudrate: int = 115200,
        open_timeout: float = 10.0,
        name: str = "",
        extra_finals: Iterable[str] = (),
        ignore: Iterable[str] = (),
        timeouts: Iterable[tuple[str, float]] = (),
    ) -> AtChannel:
        """Open ``url`` (a device path or a pyserial URL such as ``socket://host:port``).

        create_serial_connection opens the port in the loop's executor (and a socket URL
        with the loop's own connect), so a slow device never blocks the event loop.
        """
        channel = cls(name=name or url, extra_finals=extra_finals, ignore=ignore, timeouts=timeouts)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(open_timeout):
                await serial_asyncio_fast.create_serial_connection(
                    loop, lambda: _Protocol(channel), url, baudrate=baudrate
                )
                # A serial transport calls connection_made on the next loop turn.
                await channel._attached.wait()
        except Exception as exc:  # OSError, TimeoutError, serial.SerialException, ValueError
            raise PortGone(f"cannot open {url}: {exc!r}") from exc
        return channel

    def configure(
        self,
        *,
        extra_finals: Iterable[str] = (),
        ignore: Iterable[str] = (),
        timeouts: Iterable[tuple[str, float]] = (),
    ) -> None:
        """Apply a vendor profile found after opening (auto-detection)."""
        self._finals = frozenset(STANDARD_FINALS) | frozenset(extra_finals)
        self._ignore = tuple(ignore)
        self._timeouts = (*tuple(timeouts), *DEFAULT_TIMEOUTS)

    def attach(self, transport: asyncio.BaseTransport) -> None:
        """Bind a connected transport (called by the protocol)."""
        self._transport = transport
        self._gone = None
        self._closed.clear()
        self._framer.reset()
        self._attached.set()

    @property
    def is_open(self) -> bool:
        """True while the port is usable."""
        return self._gone is None

    async def close(self) -> None:
        """Close the port and wait (briefly) until the transport says it is closed."""
        if self._transport is not None and self._gone is None:
            # abort, not close: a graceful close drains output with tcdrain() in an executor
            # thread, which blocks for ever on a pty nobody reads (and then loop shutdown).
            self._transport.abort()  # type: ignore[attr-defined]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._closed.wait()
        self._lost("closed")

    def on_lost(self, cb: Callable[[str], None]) -> None:
        """Call ``cb(reason)`` when the port goes away."""
        self._lost_handlers.append(cb)

    def interrupt(self, reason: str) -> bool:
        """Fail the command in flight with AtError (a modem that rebooted forgot it).

        A submit is left alone: its outcome after Ctrl-Z is only ever settled by its answer
        or its timeout (DESIGN.md, Decisions: "unknown outcomes").
        """
        pending = self._pending
        if pending is None or pending.payload is not None or pending.future.done():
            return False
        pending.future.set_exception(AtError(pending.command, "", f"interrupted: {reason}"))
        self._dirty = True  # its answer may still come: resync before the next command
        return True

    def subscribe(self, prefix: str, handler: UrcHandler) -> None:
        """Hand every URC whose line starts with ``prefix`` to ``handler`` ("" = all)."""
        self._handlers.append((prefix, handler))

    # -- commands --------------------------------------------------------------------

    async def command(
        self, command: str, *, limit: float | None = None, prefixes: Iterable[str] = ()
    ) -> AtResponse:
        """Send ``command`` and return its response; raise a typed error on failure.

        ``prefixes`` names the response lines (``"+CMGR:"``) so that a line with a URC's
        prefix is read as part of the response while this command is in flight.
        """
        return await self._run(command, limit=limit, prefixes=_prefixes(command, prefixes))

    async def submit(
        self,
        command: str,
        payload: str,
        *,
        limit: float | None = None,
        prompt_limit: float = PROMPT_TIMEOUT,
        prefixes: Iterable[str] = (),
        before_submit: Callable[[], bool] | None = None,
    ) -> AtResponse:
        """``command``, wait for ``> ``, write ``payload`` + Ctrl-Z in one write, await the end.

        Esc aborts only at the prompt: when the prompt does not come or ``before_submit``
        says no. Errors after Ctrl-Z carry ``written=True`` (the outcome is unknown).
        """
        return await self._run(
            command,
            limit=limit,
            prefixes=_prefixes(command, prefixes),
            payload=payload,
            prompt_limit=prompt_limit,
            before_submit=before_submit,
        )

    async def _run(
        self,
        command: str,
        *,
        limit: float | None,
        prefixes: tuple[str, ...],
        payload: str | None = None,
        prompt_limit: float = PROMPT_TIMEOUT,
        before_submit: Callable[[], bool] | None = None,
    ) -> AtResponse:
        seconds = limit if limit is not None else timeout_for(command, self._timeouts)
        async with self._lock:
            if self._gone is not None:
                raise PortGone(self._gone)
            if self._dirty:
                self._dirty = False
                await self._resync(escape=False, limit=seconds)
            loop = asyncio.get_running_loop()
            pending = _Pending(command, prefixes, loop.create_future())
            if payload is not None:
                pending.prompt = loop.create_future()
                pending.payload = payload
            self._pending = pending
            written = False
            try:
                self._write(command.encode("ascii", errors="replace") + b"\r")
                if pending.prompt is not None and payload is not None:
                    await self._await_prompt(pending, prompt_limit, before_submit)
                    self._write(payload.encode("ascii", errors="replace") + CTRL_Z)
                    written = True
                try:
                    async with asyncio.timeout(seconds):
                        response = await asyncio.shield(pending.future)
                except TimeoutError:
                    await self._resync(escape=False, limit=seconds)
                    raise AtTimeout(command, seconds, written=written) from None
            except PortGone as exc:
                raise PortGone(exc.reason, written=written) from None
            finally:
                self._pending = None
        if response.final in OK_FINALS:
            return response
        raise error_from_final(command, response.final)

    async def _await_prompt(
        self, pending: _Pending, limit: float, before_submit: Callable[[], bool] | None
    ) -> None:
        assert pending.prompt is not None
        waiters: set[asyncio.Future[object]] = {pending.prompt, pending.future}  # type: ignore[arg-type]
        done, _ = await asyncio.wait(waiters, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        if pending.future.done():
            # A final result instead of the prompt (e.g. +CMS ERROR 304 on a bad length).
            response = pending.future.result()  # PortGone propagates from here
            raise error_from_final(pending.command, response.final)
        if not done:
            await self._resync(escape=True, limit=limit)
            raise AtTimeout(pending.command, limit)
        if before_submit is not None and not _safe_check(before_submit):
            # Esc at the prompt cancels the message; the modem answers OK (or nothing).
            self._write(ESC)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DEFAULT_TIMEOUT):
                    await asyncio.shield(pending.future)
            raise PromptAborted(pending.command, "", f"{pending.command!r}: aborted at prompt")

    async def _resync(self, *, escape: bool, limit: float) -> None:
        """Bring a confused modem back: Esc (only at a prompt), then ``AT+CSQ`` until answered.

        The probe counts only when its own ``+CSQ:`` line comes before the final result, so
        the late answer of an abandoned command is read past, not taken for the probe's.
        """
        if self._gone is not None:
            return
        self._two_line = None
        if escape:
            self._write(ESC)
        loop = asyncio.get_running_loop()
        for _ in range(2):
            probe = _Pending("AT+CSQ", ("+CSQ:",), loop.create_future(), require="+CSQ:")
            self._pending = probe
            self._write(b"AT+CSQ\r")
            try:
                async with asyncio.timeout(min(self.resync_limit, limit)):
                    await asyncio.shield(probe.future)
                log.info("at.resynced", port=self.name)
                return
            except (TimeoutError, PortGone):
                continue
            finally:
                self._pending = None
        log.warning("at.resync_failed", port=self.name)

    def _write(self, data: bytes) -> None:
        if self._transport is None or self._gone is not None:
            raise PortGone(self._gone or "not open")
        self._transport.write(data)  # type: ignore[attr-defined]

    # -- input -----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Feed bytes from the port. Never raises: a bad byte is the modem's problem."""
        try:
            frames = self._framer.feed(data)
        except Exception:  # the framer must not fail; this guards the loop if it does
            log.exception("at.framer_failed", port=self.name)
            self._framer.reset()
            return
        for frame in frames:
            try:
                if isinstance(frame, Prompt):
                    self._on_prompt()
                elif isinstance(frame, Line):
                    self._on_line(frame.text)
            except Exception:
                log.exception("at.frame_failed", port=self.name, frame=repr(frame)[:200])

    def _on_prompt(self) -> None:
        pending = self._pending
        if pending is not None and pending.prompt is not None and not pending.prompt.done():
            pending.prompt.set_result(None)

    def _on_line(self, line: str) -> None:
        pending = self._pending
        if self._two_line is not None:
            header, self._two_line = self._two_line, None
            if _is_hex(line):
                self._dispatch(Urc(urc_name(header), header, line))
                return
            # The PDU line never came: hand on the header alone and read this line normally.
            log.warning("at.urc_without_pdu", port=self.name, header=header)
            self._dispatch(Urc(urc_name(header), header))
        if pending is not None:
            if self._is_echo(pending, line):
                return
            if self._is_final(line):
                if pending.require and not any(
                    ln.startswith(pending.require) for ln in pending.lines
                ):
                    pending.lines.clear()  # the late end of an earlier, abandoned command
                    return
                if not pending.future.done():
                    pending.future.set_result(
                        AtResponse(pending.command, tuple(pending.lines), line)
                    )
                return
            if pending.prefixes and line.startswith(pending.prefixes):
                pending.lines.append(line)
                return
            if not self._is_urc(line):
                if not self._ignored(line):
                    pending.lines.append(line)
                return
        elif self._is_final(line):
            log.debug("at.stray_final", port=self.name, line=line)
            return
        if self._ignored(line):
            return
        if line.startswith(TWO_LINE_URCS):
            self._two_line = line
            return
        self._dispatch(Urc(urc_name(line), line))

    def _is_echo(self, pending: _Pending, line: str) -> bool:
        upper = line.upper()
        if upper == pending.command.upper():
            return True
        return pending.payload is not None and upper == pending.payload.upper()

    def _is_final(self, line: str) -> bool:
        return line in self._finals or line.upper().startswith(ERROR_PREFIXES)

    def _is_urc(self, line: str) -> bool:
        if line.startswith(KNOWN_URCS):
            return True
        return any(prefix and line.startswith(prefix) for prefix, _ in self._handlers)

    def _ignored(self, line: str) -> bool:
        # A subscribed prefix wins over the noise list ("+WIND: 3" vs "+WIND:").
        if not self._ignore or not line.startswith(self._ignore):
            return False
        return not any(prefix and line.startswith(prefix) for prefix, _ in self._handlers)

    def _dispatch(self, urc: Urc) -> None:
        handled = False
        for prefix, handler in self._handlers:
            if urc.line.startswith(prefix):
                handled = handled or bool(prefix)
                try:
                    handler(urc)
                except Exception:
                    log.exception("at.urc_handler_failed", port=self.name, urc=urc.name)
        if not handled:
            log.debug("at.urc_unhandled", port=self.name, line=urc.line[:200])

    def _lost(self, reason: str) -> None:
        if self._gone is not None:
            return
        self._gone = reason
        self._closed.set()
        pending = self._pending
        if pending is not None:
            for fut in (pending.future, pending.prompt):
                if fut is not None and not fut.done():
                    fut.set_exception(PortGone(reason))
                    fut.exception()  # mark retrieved: the waiter may already have left
        for cb in self._lost_handlers:
            try:
                cb(reason)
            except Exception:
                log.exception("at.lost_handler_failed", port=self.name)

    def connection_lost(self, exc: Exception | None) -> None:
        """The transport closed (called by the protocol)."""
        self._closed.set()
        self._lost(f"port lost: {exc!r}" if exc else "port closed")


def _prefixes(command: str, extra: Iterable[str]) -> tuple[str, ...]:
    # A command's own name is its response prefix: AT+CSQ answers "+CSQ: ...".
    m = _COMMAND_NAME.match(command)
    own = (m.group(1).upper() + ":",) if m else ()
    return (*own, *extra)


def _safe_check(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        log.exception("at.before_submit_failed")
        return False


class _Protocol(asyncio.Protocol):
    def __init__(self, channel: AtChannel) -> None:
        self._channel = channel

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._channel.attach(transport)

    def data_received(self, data: bytes) -> None:
        self._channel.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._channel.connection_lost(exc)
