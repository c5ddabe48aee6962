"""A PostgreSQL server of a test's own, to stop and start under a running node.

Debian keeps ``initdb``/``pg_ctl`` under ``/usr/lib/postgresql/<version>/bin``; as root the
server runs as ``postgres`` (PostgreSQL refuses root). Skips (fails under ``CI=true``) where
no server binaries are installed.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def _bindir() -> Path | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(f"{d}/initdb", os.X_OK) and os.access(f"{d}/pg_ctl", os.X_OK):
            return Path(d)
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


@dataclass
class Server:
    """One cluster in a temporary directory on a free 127.0.0.1 port."""

    bindir: Path
    root: Path
    port: int
    user: str | None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    async def _run(self, *args: str) -> None:
        cmd = [*(["runuser", "-u", self.user, "--"] if self.user else []), *args]
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {out.decode(errors='replace')}")

    async def start(self) -> None:
        await self._run(
            str(self.bindir / "pg_ctl"),
            "-D", str(self.root / "data"),
            "-l", str(self.root / "server.log"),
            "-w", "-t", "30",
            "-o", f"-h 127.0.0.1 -p {self.port} -k {self.root} -F",
            "start",
        )  # fmt: skip

    async def stop(self) -> None:
        """``pg_ctl stop -m immediate``: every session ends at once, as on a crash."""
        await self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate",
            "-w", "stop",
        )  # fmt: skip


def _prepare(bindir: Path) -> Server:
    """A directory the server's user owns and a free port (before the loop needs them)."""
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="gatewayd-pg-"))
    root.chmod(0o755)
    if user:
        shutil.chown(root, user)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return Server(bindir, root, port, user)


@asynccontextmanager
async def own_server() -> AsyncIterator[Server]:
    """A fresh running server, removed afterwards."""
    bindir = _bindir()
    if bindir is None:
        why = "no initdb/pg_ctl installed (Debian package postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    server = _prepare(bindir)
    root = server.root
    try:
        await server._run(
            str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres", "-A", "trust",
            "--no-sync",
        )  # fmt: skip
        await server.start()
        yield server
    finally:
        if (root / "data" / "postmaster.pid").exists():
            await server.stop()
        shutil.rmtree(root, ignore_errors=True)
