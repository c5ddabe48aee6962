"""The AT engine of one simulated modem: framing, echo, command-line parsing, dispatch.

Bytes arrive from any transport (:meth:`AtEngine.feed`); one task reads command lines
ending in CR, echoes them per ATE, splits ``AT<cmd>;<cmd>...`` into :class:`AtCommand`
values, runs each through the host's dispatcher and prints the info lines and one final
result. ``AT+CMGS`` and friends call :meth:`AtEngine.prompt`, which prints ``\\r\\n> ``
(no line end after it) and reads up to Ctrl-Z (send) or Esc (abort).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import structlog

from drivers.sim.errors import (
    AtFailure,
    CmeError,
    CmsError,
    SyntaxFailure,
    UnknownCommand,
    format_cme,
    format_cms,
)

log = structlog.get_logger(__name__)

CTRL_Z = 0x1A
ESC = 0x1B
# A line longer than this without CR is garbage: drop it rather than grow without bound.
MAX_LINE = 8192


class Op(StrEnum):
    """The four forms of an extended command (27.007 section 4)."""

    EXEC = "exec"  # AT+CMD
    READ = "read"  # AT+CMD?
    TEST = "test"  # AT+CMD=?
    SET = "set"  # AT+CMD=<args>


@dataclass(frozen=True)
class AtCommand:
    """One command of a command line: ``+CMGS`` / ``E`` / ``&F`` / ``S0``, form and args."""

    name: str
    op: Op
    args: tuple[str, ...]
    raw: str
    quoted: tuple[bool, ...] = ()


class EngineHost(Protocol):
    """What the engine needs from the modem it runs in."""

    def echo_enabled(self) -> bool: ...

    def cmee(self) -> int: ...

    def unknown_command_final(self) -> str | None: ...

    def responsive(self) -> bool: ...

    def garbage(self) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def record(self, kind: str, detail: str) -> None: ...

    async def execute(self, command: AtCommand) -> list[str]: ...

    async def before_prompt(self) -> None: ...


def split_args(text: str) -> tuple[tuple[str, ...], tuple[bool, ...]]:
    """Split ``a,"b,c",d`` into values (quotes removed) and whether each was quoted."""
    values: list[str] = []
    quoted: list[bool] = []
    current: list[str] = []
    in_quotes = False
    was_quoted = False
    for ch in text:
        if ch == '"':
            in_quotes = not in_quotes
            was_quoted = True
        elif ch == "," and not in_quotes:
            values.append("".join(current).strip())
            quoted.append(was_quoted)
            current, was_quoted = [], False
        else:
            current.append(ch)
    if in_quotes:
        raise SyntaxFailure("unbalanced quotes")
    values.append("".join(current).strip())
    quoted.append(was_quoted)
    return tuple(values), tuple(quoted)


def _extended_end(body: str, start: int) -> int:
    in_quotes = False
    for i in range(start, len(body)):
        if body[i] == '"':
            in_quotes = not in_quotes
        elif body[i] == ";" and not in_quotes:
            return i
    return len(body)


def _digits(body: str, start: int) -> int:
    end = start
    while end < len(body) and body[end].isdigit():
        end += 1
    return end


def parse_command_line(body: str) -> list[AtCommand]:
    """Parse what follows ``AT`` on a command line into commands (SyntaxFailure if bad)."""
    commands: list[AtCommand] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch in " ;":
            i += 1
            continue
        if ch in "+^$#%*":
            j = i + 1
            while j < len(body) and (body[j].isalnum() or body[j] == "_"):
                j += 1
            if j == i + 1:
                raise SyntaxFailure(f"empty command name at {i}")
            end = _extended_end(body, j)
            name, suffix = body[i:j].upper(), body[j:end].strip()
            args: tuple[str, ...] = ()
            quoted: tuple[bool, ...] = ()
            if suffix == "":
                op = Op.EXEC
            elif suffix == "?":
                op = Op.READ
            elif suffix.replace(" ", "") == "=?":
                op = Op.TEST
            elif suffix.startswith("="):
                op = Op.SET
                args, quoted = split_args(suffix[1:])
            else:
                raise SyntaxFailure(f"bad suffix {suffix!r} after {name}")
            commands.append(AtCommand(name, op, args, body[i:end], quoted))
            i = end
        elif ch == "&" and i + 1 < len(body) and body[i + 1].isalpha():
            end = _digits(body, i + 2)
            value = body[i + 2 : end] or "0"
            commands.append(AtCommand("&" + body[i + 1].upper(), Op.SET, (value,), body[i:end]))
            i = end
        elif ch.upper() == "S" and i + 1 < len(body) and body[i + 1].isdigit():
            j = _digits(body, i + 1)
            name = f"S{int(body[i + 1 : j])}"
            if body[j : j + 1] == "?":
                commands.append(AtCommand(name, Op.READ, (), body[i : j + 1]))
                i = j + 1
            elif body[j : j + 1] == "=":
                end = _digits(body, j + 1)
                commands.append(AtCommand(name, Op.SET, (body[j + 1 : end],), body[i:end]))
                i = end
            else:
                raise SyntaxFailure(f"bad S-register syntax at {i}")
        elif ch.upper() == "D":
            # Dial takes the rest of the line.
            commands.append(AtCommand("D", Op.SET, (body[i + 1 :],), body[i:]))
            i = len(body)
        elif ch.isalpha():
            end = _digits(body, i + 1)
            value = body[i + 1 : end] or "0"
            commands.append(AtCommand(ch.upper(), Op.SET, (value,), body[i:end]))
            i = end
        else:
            raise SyntaxFailure(f"unexpected {ch!r} at {i}")
    return commands


def _block(lines: Sequence[str]) -> bytes:
    return ("\r\n" + "\r\n".join(lines) + "\r\n").encode("latin-1", errors="replace")


class AtEngine:
    """Reads command lines from the byte stream and answers them, one at a time."""

    def __init__(self, host: EngineHost) -> None:
        self._host = host
        self._buf = bytearray()
        self._data = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_prompt = False
        self._held_urcs: list[tuple[str, ...]] = []
        self._after_echo: list[tuple[str, ...]] = []

    def start(self) -> None:
        """Start reading commands."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sim-at-engine")

    async def stop(self) -> None:
        """Stop reading commands (a command in progress is cancelled)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def restart(self) -> None:
        """Drop pending input and any command in progress, as a rebooting modem does."""
        await self.stop()
        self._buf.clear()
        self._in_prompt = False
        self._held_urcs.clear()
        self._after_echo.clear()
        self.start()

    def feed(self, data: bytes) -> None:
        """Bytes from the client (a hung modem drops them)."""
        if not self._host.responsive():
            self._host.record("ignored", data.decode("latin-1"))
            return
        self._buf += data
        if len(self._buf) > MAX_LINE and CTRL_Z not in self._buf and b"\r" not in self._buf:
            del self._buf[:-MAX_LINE]
        self._data.set()

    def emit_urc(self, lines: Sequence[str]) -> None:
        """Print an unsolicited result (one or more lines) now, or after the `> ` prompt."""
        if not self._host.responsive():
            return
        if self._in_prompt:
            # 27.005: URCs are buffered while the TE is typing a message at the prompt.
            self._held_urcs.append(tuple(lines))
            return
        self._host.write(_block(lines))
        self._host.record("urc", "|".join(lines))

    def urc_after_next_echo(self, lines: Sequence[str]) -> None:
        """Print ``lines`` right after the next command's echo, before its final result."""
        self._after_echo.append(tuple(lines))

    async def prompt(self) -> bytes | None:
        """Print the ``> `` prompt and read the message up to Ctrl-Z; None after Esc."""
        await self._host.before_prompt()
        self._in_prompt = True
        self._host.write(b"\r\n> ")
        self._host.record("prompt", "")
        body, terminator = await self._read_until(bytes((CTRL_Z, ESC)))
        if self._host.echo_enabled():
            self._host.write(body)
        return None if terminator == ESC else body

    async def _read_until(self, terminators: bytes) -> tuple[bytes, int]:
        while True:
            hits = [i for i in (self._buf.find(t) for t in terminators) if i >= 0]
            if hits:
                at = min(hits)
                chunk, terminator = bytes(self._buf[:at]), self._buf[at]
                del self._buf[: at + 1]
                return chunk, terminator
            self._data.clear()
            await self._data.wait()

    async def _run(self) -> None:
        while True:
            raw, _ = await self._read_until(b"\r")
            raw = raw.lstrip(b"\n")
            text = raw.decode("latin-1")
            start = text.upper().find("AT")
            if start < 0 or not self._host.responsive():
                continue
            if self._host.echo_enabled():
                self._host.write(raw + b"\r")
            try:
                await self._command_line(text[start + 2 :])
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug in a handler must not kill the modem: answer ERROR and go on.
                log.exception("sim.engine.handler_crashed", line=text)
                self._host.write(_block(["ERROR"]))
            finally:
                self._in_prompt = False
                held, self._held_urcs = self._held_urcs, []
                for urc in held:
                    self.emit_urc(urc)

    async def _command_line(self, body: str) -> None:
        for urc in self._after_echo:
            self.emit_urc(urc)
        self._after_echo.clear()
        lines: list[str] = []
        final = "OK"
        try:
            commands = parse_command_line(body)
            for command in commands:
                self._host.record("command", command.raw)
                lines += await self._host.execute(command)
        except AtFailure as exc:
            final = self._failure_line(exc)
        if not self._host.responsive():
            return
        out = self._host.garbage()
        if lines:
            out += _block(lines)
        self._host.write(out + _block([final]))

    def _failure_line(self, exc: AtFailure) -> str:
        cmee = self._host.cmee()
        if isinstance(exc, CmsError):
            return format_cms(exc.code, cmee)
        if isinstance(exc, CmeError):
            return format_cme(exc.code, cmee)
        if isinstance(exc, UnknownCommand):
            special = self._host.unknown_command_final()
            if special is not None:
                return special
            return format_cme(100, cmee)
        return format_cme(50, cmee) if cmee else "ERROR"
