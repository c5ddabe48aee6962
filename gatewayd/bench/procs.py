"""The processes a benchmark runs: the daemon (``gatewayd run``) and the simulator.

Both are real subprocesses, so the daemon's CPU time and memory are its own: read from
``/proc/PID/stat`` (utime + stime) and ``/proc/PID/status`` (VmRSS, VmHWM).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

_TICK = os.sysconf("SC_CLK_TCK")
# The daemon and the simulator import from the source tree this harness was loaded from.
_TREE = str(Path(__file__).resolve().parents[2])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_TREE, env.get("PYTHONPATH")) if p)
    return env


class BenchError(Exception):
    """A benchmark could not run (a process failed to start or to answer)."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` used so far."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces: fields are counted after its closing parenthesis.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds so far of ``pid`` and of its children, by pid (a PostgreSQL server: the
    postmaster and its backends; a backend that exits between two looks takes its share)."""
    out = {pid: cpu_seconds(pid)}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            child = int(entry.name)
            out[child] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` (resident now) and ``VmHWM`` (peak resident) of ``pid`` in KiB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class ModemSpec:
    """One modem line of the daemon's config."""

    name: str
    port: str
    max_per_minute: int | None = None


def write_config(
    workdir: Path,
    port: int,
    modems: list[ModemSpec],
    *,
    level: str,
    database: str = "gatewayd.db",
    node_name: str = "bench",
) -> Path:
    """Write ``gatewayd.toml`` and its token file in ``workdir``; return the config path."""
    token = workdir / "api-token"
    token.write_text(secrets.token_urlsafe(24) + "\n")
    token.chmod(0o600)
    lines = [
        f'database = "{database}"',
        f'node_name = "{node_name}"',
        "",
        "[api]",
        f'listen = "127.0.0.1:{port}"',
        'token_files = ["api-token"]',
        "max_batch = 1000",
        "max_body_bytes = 4194304",
    ]
    for m in modems:
        per_minute = "false" if m.max_per_minute is None else str(m.max_per_minute)
        lines += [
            "",
            "[[modems]]",
            f'name = "{m.name}"',
            f'port = "{m.port}"',
            'profile = "generic"',
            "[modems.limits]",
            f"max_per_minute = {per_minute}",
            "max_per_hour = false",
            "max_per_day = false",
        ]
    lines += ["", "[logging]", 'format = "json"', f'level = "{level}"', ""]
    path = workdir / "gatewayd.toml"
    path.write_text("\n".join(lines))
    return path


class DaemonProc:
    """``gatewayd run --config`` in ``workdir``, logging to ``workdir/daemon.log``.

    ``database`` is the config's (the SQLite file ``workdir/gatewayd.db`` by default, or a
    ``postgresql://`` URL shared by several daemons, each with its own ``node_name``).
    """

    def __init__(
        self,
        workdir: Path,
        modems: list[ModemSpec],
        *,
        level: str = "info",
        database: str = "gatewayd.db",
        node_name: str = "bench",
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config = write_config(
            workdir, self.port, modems, level=level, database=database, node_name=node_name
        )
        self.token = (workdir / "api-token").read_text().strip()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = workdir / "gatewayd.db"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The daemon's process id."""
        if self._proc is None:
            raise BenchError("daemon not started")
        return self._proc.pid

    @property
    def headers(self) -> dict[str, str]:
        """Authorization for the API."""
        return {"Authorization": f"Bearer {self.token}"}

    def _spawn(self) -> subprocess.Popen[bytes]:
        with (self.workdir / "daemon.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "gatewayd", "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=_env(),
            )

    async def start(self, within: float = 120.0) -> None:
        """Start the daemon and wait (up to ``within`` s) until ``/healthz`` answers."""
        proc = self._proc = self._spawn()
        async with aiohttp.ClientSession() as http, asyncio.timeout(within):
            while True:
                if proc.poll() is not None:
                    raise BenchError(f"daemon exited {proc.returncode}: see daemon.log")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/healthz") as resp:
                        if resp.status == 200:
                            return
                # Start-up has no event to await from outside the process: look again.
                await asyncio.sleep(0.05)

    async def modems_ready(self, names: list[str], within: float = 60.0) -> None:
        """Wait until every named modem reports state ``ready`` in ``GET /v1/modems``."""
        async with aiohttp.ClientSession(headers=self.headers) as http:
            async with asyncio.timeout(within):
                while True:
                    async with http.get(f"{self.url}/v1/modems") as resp:
                        body = await resp.json()
                    items = body.get("modems", body) if isinstance(body, dict) else body
                    ready = {m["name"] for m in items if m.get("state") == "ready"}
                    if ready >= set(names):
                        return
                    await asyncio.sleep(0.1)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, wait; SIGKILL if it does not exit in time."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class SimProc:
    """``python -m drivers.sim``: ``count`` modems over ptys with a JSONL sent log."""

    def __init__(
        self,
        workdir: Path,
        count: int,
        *,
        latency: tuple[float, float],
        report_delay: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.workdir = workdir
        self.count = count
        self.latency = latency
        self.report_delay = report_delay
        self.sent_log = workdir / "sim-sent.jsonl"
        self.ports: list[str] = []
        self._proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        """The simulator's process id."""
        if self._proc is None:
            raise BenchError("simulator not started")
        return self._proc.pid

    def _spawn(self) -> subprocess.Popen[str]:
        lat = ",".join(str(x) for x in self.latency)
        rep = ",".join(str(x) for x in self.report_delay)
        with (self.workdir / "sim.log").open("ab") as err:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "drivers.sim",
                    "--modems",
                    str(self.count),
                    "--link-dir",
                    str(self.workdir / "links"),
                    "--latency",
                    lat,
                    "--report-delay",
                    rep,
                    "--sent-log",
                    str(self.sent_log),
                ],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=_env(),
            )

    async def start(self, within: float = 60.0) -> None:
        """Start the simulator and read one pty path per modem from its stdout."""
        self._proc = self._spawn()
        stdout = self._proc.stdout
        if stdout is None:  # pragma: no cover - PIPE was asked for
            raise BenchError("simulator has no stdout")
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(within):
            while len(self.ports) < self.count:
                line = await loop.run_in_executor(None, stdout.readline)
                if not line:
                    raise BenchError("simulator exited early: see sim.log")
                fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
                self.ports.append(fields["pty"])

    def stop(self) -> None:
        """SIGTERM and wait."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


class Profiler:
    """``py-spy record`` of a process into a collapsed-stack file, if py-spy is installed."""

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self._proc: subprocess.Popen[bytes] | None = None
        if Path(exe).exists():
            self._proc = subprocess.Popen(
                [exe, "record", "-p", str(pid), "-o", str(out), "-f", "raw", "-r", "200"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def stop(self) -> Path | None:
        """Stop sampling; the output file, or ``None`` without py-spy."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return self.out if self.out.exists() else None
