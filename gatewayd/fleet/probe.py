"""A short, safe look at a new port: does it answer AT, which modem (IMEI), which SIM (ICCID).

Only read-only commands are sent (no PIN, no settings), so probing a port that turns out to
be a stick's second interface, or a device that is not a modem, changes nothing on it.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import structlog

from drivers.at import AtChannel, AtError, AtTimeout, PortGone
from drivers.modem import parsing
from drivers.profiles import detect_profile

log = structlog.get_logger(__name__)

# Programs that open serial ports on their own and keep them (their /proc comm names).
PORT_GRABBERS = frozenset({"ModemManager", "minicom", "picocom", "screen", "gammu-smsd", "cu"})


@dataclass(frozen=True)
class ProbeResult:
    """What a port told about itself."""

    path: str
    manufacturer: str | None
    imei: str | None
    iccid: str | None
    profile: str

    @property
    def identity(self) -> str | None:
        """ICCID, else IMEI (DESIGN: Identity)."""
        return self.iccid or self.imei


class ProbeFailed(Exception):
    """The port cannot be used as an AT port; ``retry`` says whether trying later may help."""

    def __init__(self, path: str, reason: str, *, retry: bool) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.retry = retry


class PortBusy(ProbeFailed):
    """Another process holds the port (ModemManager, a terminal): named, with the fix."""

    def __init__(self, path: str, holders: tuple[str, ...]) -> None:
        names = ", ".join(holders)
        fix = (
            "set ID_MM_DEVICE_IGNORE=1 for this device (systemd/ udev rules example) "
            "or stop ModemManager"
            if any(h.startswith("ModemManager") for h in holders)
            else "close that program or stop it from opening the port"
        )
        super().__init__(path, f"held by {names}: {fix}", retry=False)
        self.holders = holders


async def probe(path: str, *, limit: float, baudrate: int = 115200, name: str = "") -> ProbeResult:
    """Open ``path``, ask AT, manufacturer, IMEI and ICCID, close; ProbeFailed if unusable."""
    try:
        channel = await AtChannel.open(
            path, baudrate=baudrate, open_timeout=limit * 2, name=name or path
        )
    except PortGone as exc:
        holders = await asyncio.to_thread(port_holders, path)
        if holders:
            raise PortBusy(path, holders) from exc
        raise ProbeFailed(path, exc.reason, retry=True) from exc
    try:
        return await _ask(channel, path, limit)
    finally:
        await channel.close()


async def _ask(channel: AtChannel, path: str, limit: float) -> ProbeResult:
    try:
        await channel.command("AT", limit=limit)
    except AtTimeout as exc:
        # A stick's other interfaces (diagnostics, NMEA, PPP) stay silent: not an AT port.
        # Both ends of a pty are open in its owner too: only a known port grabber counts.
        holders = await asyncio.to_thread(port_holders, path)
        grabbers = tuple(h for h in holders if h.split(" ")[0] in PORT_GRABBERS)
        if grabbers:
            raise PortBusy(path, grabbers) from exc
        raise ProbeFailed(path, "no answer to AT (not an AT port)", retry=False) from exc
    except AtError:
        pass  # an error is an answer: something speaks AT here
    except PortGone as exc:
        raise ProbeFailed(path, exc.reason, retry=True) from exc
    try:
        await _optional(channel, "ATE0", limit)
        manufacturer = parsing.parse_text(await _optional(channel, "AT+CGMI", limit), "+CGMI:")
        profile = detect_profile(manufacturer or "")
        imei = parsing.parse_identity(await _optional(channel, "AT+CGSN", limit))
        iccid = None
        # DESIGN: Identity: the ICCID is readable before any PIN, per profile's command.
        for command in dict.fromkeys((profile.iccid_command, "AT+CCID", "AT+ICCID")):
            iccid = parsing.parse_iccid(await _optional(channel, command, limit))
            if iccid:
                break
    except (AtTimeout, PortGone) as exc:
        raise ProbeFailed(path, f"stopped answering while probed: {exc}", retry=True) from exc
    return ProbeResult(path, manufacturer, imei, iccid, profile.name)


async def _optional(channel: AtChannel, command: str, limit: float) -> tuple[str, ...]:
    try:
        return (await channel.command(command, limit=limit)).lines
    except AtTimeout:
        raise
    except AtError:
        return ()


def port_holders(path: str) -> tuple[str, ...]:
    """Other processes with ``path`` open, as ``"name (pid N)"`` (blocking: run in a thread)."""
    try:
        device = os.path.realpath(path)
    except OSError:
        return ()
    me = os.getpid()
    found: list[str] = []
    proc = Path("/proc")
    try:
        pids = [p for p in proc.iterdir() if p.name.isdigit() and int(p.name) != me]
    except OSError:
        return ()
    for pid_dir in pids:
        try:
            fds = list((pid_dir / "fd").iterdir())
        except OSError:
            continue  # gone, or not ours to look at
        for fd in fds:
            try:
                if os.readlink(fd) == device:
                    comm = (pid_dir / "comm").read_text().strip()
                    found.append(f"{comm} (pid {pid_dir.name})")
                    break
            except OSError:
                continue
    return tuple(found)
