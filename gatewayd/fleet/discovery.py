"""Hot-plug: watch a directory of serial ports (``/dev/serial/by-id``), attach sticks that
appear, detach those that vanish.

One task owns the watch. The directory is rescanned when inotify says its entries changed
(gatewayd.fleet.dirwatch), and every ``SAFETY_POLL`` seconds in case an event was missed;
where inotify is unavailable, or the directory does not exist yet, every ``poll_seconds``. A new
port that matches the config is probed (gatewayd.fleet.probe); the one port of a multi-port
stick that answers AT is attached with the settings of the SIM inside (gatewayd.fleet.binding);
the others are remembered as "not an AT port". A port another process holds is reported once,
by name with the fix, and not retried until it vanishes and comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import structlog

from drivers.clock import Clock
from drivers.modem import Modem
from gatewayd.config.model import GatewayConfig, ModemConfig
from gatewayd.core import Gateway
from gatewayd.fleet.binding import modem_config
from gatewayd.fleet.dirwatch import DirWatch
from gatewayd.fleet.probe import PortBusy, ProbeFailed, ProbeResult, probe

log = structlog.get_logger(__name__)

# A vanished stick's worker gets this long to see the port error and hand its work back.
DETACH_DRAIN_SECONDS = 2.0
# A stick just plugged in may need a few seconds before it answers AT: a silent port is
# probed this many times (one per scan) before it is taken for a non-AT interface.
SILENT_PROBES = 3
# With inotify the directory is still rescanned this often, in case an event was missed.
SAFETY_POLL = 60.0

ModemFactory = Callable[[ModemConfig], Modem]


class PortState(StrEnum):
    """What discovery made of one port."""

    ATTACHED = "attached"
    BUSY = "busy"  # another process holds it: reported, not retried
    NOT_AT = "not_at"  # silent to AT: another interface of a multi-port stick
    DUPLICATE = "duplicate"  # the same modem or SIM is already attached on another port
    FAILED = "failed"  # could not be probed; tried again at the next scan


@dataclass(frozen=True)
class PortStatus:
    """One watched port, for the API and the status page."""

    path: str
    state: PortState
    reason: str
    modem: str | None = None
    iccid: str | None = None
    imei: str | None = None


class Discovery:
    """Watches ``config.discovery.directory`` and attaches matching ports to the gateway."""

    def __init__(
        self,
        config: GatewayConfig,
        gateway: Gateway,
        *,
        clock: Clock,
        pins: Mapping[str, str],
        make_modem: ModemFactory | None = None,
    ) -> None:
        self._config = config
        self._gateway = gateway
        self._clock = clock
        self._pins = dict(pins)
        self._make_modem = make_modem or self._default_modem
        self._ports: dict[str, PortStatus] = {}
        self._modems: dict[str, Modem] = {}  # path -> attached modem
        self._silent: dict[str, int] = {}  # path -> probes it did not answer
        self._static = {_real(m.port) for m in config.modems if m.port.startswith("/")}
        self._task: asyncio.Task[None] | None = None
        self._scan_lock = asyncio.Lock()
        # Set after each completed scan (tests and tools wait on it).
        self.scanned = asyncio.Event()

    @property
    def modems(self) -> tuple[Modem, ...]:
        """The modems attached by discovery now."""
        return tuple(self._modems.values())

    def set_pins(self, pins: Mapping[str, str]) -> None:
        """The ICCID -> PIN map for sticks attached from now on (a config reload)."""
        self._pins = dict(pins)

    def ports(self) -> list[PortStatus]:
        """Every port seen and what became of it, by path."""
        return [self._ports[p] for p in sorted(self._ports)]

    def start(self) -> None:
        """Start watching (the first scan runs at once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="fleet-discovery")

    async def stop(self) -> None:
        """Stop watching and stop every modem discovery attached."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # The gateway has stopped its workers already when the daemon stops: no drain.
        await asyncio.gather(*(self._detach(p, "stopping", drain=0.0) for p in list(self._modems)))

    async def _watch(self) -> None:
        watch = DirWatch(str(self._config.discovery.directory))
        try:
            while True:
                watch.arm()  # before the scan: a link made during it wakes the next wait
                try:
                    await self.rescan()
                except Exception:
                    log.exception("discovery.scan_failed")
                await self._pause(watch)
        finally:
            watch.close()

    async def _pause(self, watch: DirWatch) -> None:
        """Until the directory changes (inotify) or the next poll is due."""
        poll = self._config.discovery.poll_seconds
        # A port still being probed (a stick not answering yet) is retried at the poll rate.
        pending = any(s.state is PortState.FAILED for s in self._ports.values())
        if not watch.active:
            await self._clock.sleep(poll)
            return
        sleeper = asyncio.create_task(
            self._clock.sleep(poll if pending else max(poll, SAFETY_POLL))
        )
        changed = asyncio.create_task(watch.changed())
        try:
            await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, changed):
                task.cancel()
            await asyncio.gather(sleeper, changed, return_exceptions=True)

    async def rescan(self) -> None:
        """Look at the directory once: attach what appeared, detach what vanished."""
        async with self._scan_lock:
            present = await asyncio.to_thread(self._list)
            for path in [p for p in self._ports if p not in present]:
                await self._vanished(path)
            # In name order: a stick's interfaces are probed if00 first, every scan alike.
            for path in sorted(present):
                if path not in self._ports or self._ports[path].state is PortState.FAILED:
                    await self._appeared(path)
            self.scanned.set()

    def _list(self) -> set[str]:
        d = self._config.discovery
        try:
            entries = [e.path for e in os.scandir(d.directory)]
        except FileNotFoundError:
            return set()  # no USB serial device plugged in yet
        except OSError as exc:
            log.warning("discovery.unreadable", directory=str(d.directory), error=str(exc))
            return set()
        return {
            p
            for p in entries
            if (d.auto or any(fnmatch.fnmatchcase(p, pat) for pat in d.patterns))
            and os.path.exists(p)  # a dangling link: the device is already gone
            and _real(p) not in self._static
        }

    async def _appeared(self, path: str) -> None:
        d = self._config.discovery
        try:
            found = await probe(path, limit=d.probe_timeout_seconds, baudrate=d.baudrate)
        except PortBusy as exc:
            log.error("discovery.port_busy", port=path, holders=list(exc.holders), fix=exc.reason)
            self._ports[path] = PortStatus(path, PortState.BUSY, exc.reason)
            return
        except ProbeFailed as exc:
            silent = 0 if exc.retry else self._silent.get(path, 0) + 1
            self._silent[path] = silent
            state = PortState.NOT_AT if silent >= SILENT_PROBES else PortState.FAILED
            if state is PortState.NOT_AT:
                log.info("discovery.port_skipped", port=path, reason=exc.reason)
            elif path not in self._ports:  # once per appearance, not at every rescan
                log.warning("discovery.probe_failed", port=path, reason=exc.reason)
            self._ports[path] = PortStatus(path, state, exc.reason)
            return
        self._silent.pop(path, None)
        twin = self._attached_with(found)
        if twin is not None:
            reason = f"same modem or SIM as {twin}"
            self._ports[path] = PortStatus(
                path, PortState.DUPLICATE, reason, iccid=found.iccid, imei=found.imei
            )
            log.info("discovery.port_skipped", port=path, reason=reason)
            return
        await self._attach(found)

    def _attached_with(self, found: ProbeResult) -> str | None:
        # A stick with two AT ports answers on both: attach it once (DESIGN: Hardware).
        for w in self._gateway.workers:
            info = w.modem.info
            if (found.iccid and info.iccid == found.iccid) or (
                found.imei and info.imei == found.imei
            ):
                return w.name
        for status in self._ports.values():
            if status.state is PortState.ATTACHED and (
                (found.iccid and status.iccid == found.iccid)
                or (found.imei and status.imei == found.imei)
            ):
                return status.modem
        return None

    async def _attach(self, found: ProbeResult) -> None:
        cfg = modem_config(self._config, found)
        modem = self._make_modem(cfg)
        try:
            await self._gateway.add_modem(modem, cfg)
        except ValueError as exc:
            self._ports[found.path] = PortStatus(found.path, PortState.DUPLICATE, str(exc))
            return
        self._modems[found.path] = modem
        self._ports[found.path] = PortStatus(
            found.path,
            PortState.ATTACHED,
            f"attached as {cfg.name} (pool {cfg.pool})",
            modem=cfg.name,
            iccid=found.iccid,
            imei=found.imei,
        )
        log.info(
            "discovery.attached",
            port=found.path,
            modem=cfg.name,
            iccid=found.iccid,
            imei=found.imei,
            pool=cfg.pool,
            pin=found.iccid in self._pins,
        )
        await modem.start()

    async def _vanished(self, path: str) -> None:
        status = self._ports.pop(path)
        self._silent.pop(path, None)
        if status.state is PortState.ATTACHED:
            await self._detach(path, "port vanished", drain=DETACH_DRAIN_SECONDS)
        else:
            log.info("discovery.port_gone", port=path)

    async def _detach(self, path: str, why: str, *, drain: float) -> None:
        modem = self._modems.pop(path)
        log.warning("discovery.detached", port=path, modem=modem.name, reason=why)
        await self._gateway.remove_modem(modem.name, drain_timeout=drain)
        await modem.stop()
        self._ports.pop(path, None)

    def _default_modem(self, cfg: ModemConfig) -> Modem:
        return Modem(
            cfg.port,
            name=cfg.name,
            profile=cfg.profile,
            pins=self._pins,
            baudrate=cfg.baudrate,
            clock=self._clock,
        )


def _real(path: str) -> str:
    try:
        return os.path.realpath(path)
    except OSError:
        return path
