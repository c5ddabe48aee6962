"""A throwaway PostgreSQL cluster for the demo, the benchmarks and tests.

The same recipe as ``scripts/lib/postgres.sh`` (which ``scripts/test`` sources), from asyncio:
Debian keeps ``initdb``/``pg_ctl`` out of ``PATH`` under ``/usr/lib/postgresql/<version>/bin``
(the newest wins, else ``PATH``); PostgreSQL refuses to run as root, so as root every
command runs through ``runuser -u postgres`` (``nobody`` without that user) in a temporary
directory that user owns; the server listens on a free port of 127.0.0.1 and on a socket
in that directory only, trusts local connections, and does not fsync (nothing in it is
meant to survive). The directory is removed when the cluster is.
"""

from __future__ import annotations

import asyncio
import enum
import glob
import os
import pwd
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

# pg_ctl -w waits this long for the server to accept connections (its own -t).
START_WAIT_SECONDS = 30
# Any one command (initdb, pg_ctl) is given this long before it is killed.
COMMAND_SECONDS = 60.0


class PostgresUnavailable(Exception):
    """No PostgreSQL server binaries (``initdb``, ``pg_ctl``) on this machine."""

    def __init__(self) -> None:
        super().__init__(
            "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin "
            "or on PATH: install Debian's postgresql (apt-get install postgresql) "
            "or give a database URL"
        )


class PostgresCommandError(Exception):
    """``initdb`` or ``pg_ctl`` failed or did not finish in time; ``output`` is what it said."""

    def __init__(self, command: str, output: str) -> None:
        super().__init__(f"{command}: {output.strip() or 'failed'}")
        self.command = command
        self.output = output


class StopMode(enum.Enum):
    """``pg_ctl stop -m``: wait for clients, end their sessions, or die as on a crash."""

    SMART = "smart"
    FAST = "fast"
    IMMEDIATE = "immediate"


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``; :class:`PostgresUnavailable` if none."""
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    # Newest version first: "9.6" < "15" needs a numeric sort, not a text one.
    for d in sorted(versions, key=_version_key, reverse=True):
        if os.access(f"{d}/initdb", os.X_OK) and os.access(f"{d}/pg_ctl", os.X_OK):
            return Path(d)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).parent
    raise PostgresUnavailable()


def _version_key(bindir: str) -> tuple[int, ...]:
    version = Path(bindir).parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _server_user() -> str | None:
    """Who runs the server: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "nobody"
    return "postgres"


def _make_root(user: str | None) -> Path:
    """A temporary directory the server's user owns (it writes its socket and log there)."""
    root = Path(tempfile.mkdtemp(prefix="gatewayd-pg-"))
    root.chmod(0o755)
    if user is not None:
        shutil.chown(root, user)
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class DevPostgres:
    """One cluster in a temporary directory: :meth:`create`, :meth:`start`, :meth:`remove`."""

    def __init__(self, bindir: Path, root: Path, port: int, user: str | None) -> None:
        self.bindir = bindir
        self.root = root
        self.port = port
        self.user = user

    @property
    def dsn(self) -> str:
        """The URL of the ``postgres`` database as the ``postgres`` superuser (trusted)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        return self.root / "data"

    @property
    def running(self) -> bool:
        """Whether a server was started on the data directory and not stopped."""
        return (self.data / "postmaster.pid").exists()

    @classmethod
    async def create(cls) -> DevPostgres:
        """A new cluster (``initdb``) in a fresh temporary directory, not started yet."""
        bindir = find_bindir()
        user = _server_user()
        root = await asyncio.to_thread(_make_root, user)
        server = cls(bindir, root, _free_port(), user)
        try:
            await server._run(
                str(bindir / "initdb"), "-D", str(server.data), "-U", "postgres",
                "-A", "trust", "-E", "UTF8", "--no-sync",
            )  # fmt: skip
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, root, True)
            raise
        return server

    async def _run(self, *args: str) -> None:
        cmd = [*(["runuser", "-u", self.user, "--"] if self.user else []), *args]
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        name = Path(args[0]).name
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), COMMAND_SECONDS)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise PostgresCommandError(name, f"no answer in {COMMAND_SECONDS:.0f} s") from None
        if proc.returncode != 0:
            raise PostgresCommandError(name, out.decode(errors="replace"))

    async def start(self) -> None:
        """``pg_ctl start -w``: returns once the server accepts connections."""
        # -F: no fsync (throwaway); sockets only on 127.0.0.1 and in our own directory.
        try:
            await self._run(
                str(self.bindir / "pg_ctl"), "-D", str(self.data),
                "-l", str(self.root / "server.log"), "-w", "-t", str(START_WAIT_SECONDS),
                "-o", f"-h 127.0.0.1 -p {self.port} -k {self.root} -F -c max_connections=200",
                "start",
            )  # fmt: skip
        except PostgresCommandError as exc:
            # pg_ctl only says "examine the log output": the reason is in the server's log.
            server_log = await asyncio.to_thread(self._server_log)
            raise PostgresCommandError(exc.command, f"{exc.output}\n{server_log}") from None
        log.debug("devpg.started", port=self.port, root=str(self.root))

    def _server_log(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    async def stop(self, mode: StopMode = StopMode.IMMEDIATE) -> None:
        """``pg_ctl stop -m MODE -w`` (immediate: every session ends at once, as on a crash)."""
        await self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode.value, "-w", "stop"
        )
        log.debug("devpg.stopped", port=self.port, mode=mode.value)

    async def remove(self) -> None:
        """Stop the server if it runs (immediate), then delete its directory."""
        try:
            if self.running:
                await self.stop(StopMode.IMMEDIATE)
        finally:
            await asyncio.to_thread(shutil.rmtree, self.root, True)


@asynccontextmanager
async def throwaway_postgres() -> AsyncIterator[DevPostgres]:
    """A fresh running cluster, stopped and removed when the block ends (also on errors)."""
    server = await DevPostgres.create()
    try:
        await server.start()
        yield server
    finally:
        await server.remove()
