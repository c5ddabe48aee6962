"""Byte streams a simulated modem speaks over: a pseudo-terminal and a TCP socket.

Both only move bytes: incoming bytes go to a callback, outgoing bytes are queued without
ever blocking the event loop. A client opens the pty's slave path (``/dev/pts/N`` or a
stable symlink) like a serial port, or ``socket://127.0.0.1:PORT`` with pyserial.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import struct
import tty
from collections.abc import Callable
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

DataCallback = Callable[[bytes], None]

# Output a client has not read yet is dropped beyond this (a port nobody listens on).
MAX_PENDING_OUTPUT = 64 * 1024


class Endpoint(Protocol):
    """One way into a simulated modem."""

    @property
    def url(self) -> str:
        """What a client opens: a device path or a ``socket://`` URL."""
        ...

    @property
    def is_open(self) -> bool:
        """Whether the port currently exists."""
        ...

    async def open(self) -> None:
        """Create the port (again, after :meth:`close`)."""
        ...

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the client; dropped when no port exists."""
        ...

    def close(self) -> None:
        """Make the port disappear (pty closed, TCP connection reset)."""
        ...


class PtyEndpoint:
    """A pseudo-terminal: the simulator owns the master, clients open the slave path.

    The slave side stays open in this process and both sides are raw: otherwise reads on
    the master fail with EIO once a client closes (DESIGN.md, Decisions: Hardware set-up).
    """

    def __init__(self, on_data: DataCallback, link_path: str | None = None) -> None:
        self._on_data = on_data
        self.link_path = link_path
        self._master: int | None = None
        self._slave: int | None = None
        self.device = ""
        self._pending = bytearray()
        self._writer_armed = False

    @property
    def url(self) -> str:
        return self.link_path or self.device

    @property
    def is_open(self) -> bool:
        return self._master is not None

    async def open(self) -> None:
        if self._master is not None:
            return
        master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.device = os.ttyname(slave)
        # Clients may run as another user (a daemon under systemd): let them open it.
        os.chmod(self.device, 0o666)
        if self.link_path:
            tmp = f"{self.link_path}.tmp{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(self.device, tmp)
            os.replace(tmp, self.link_path)
        asyncio.get_running_loop().add_reader(master, self._readable)
        log.debug("sim.pty.open", device=self.device, link=self.link_path)

    def _readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            # EIO cannot happen while we hold the slave open; anything else ends the port.
            log.warning("sim.pty.read_failed", device=self.device, error=str(exc))
            self.close()
            return
        if data:
            self._on_data(data)

    def write(self, data: bytes) -> None:
        if self._master is None:
            return
        self._pending += data
        if len(self._pending) > MAX_PENDING_OUTPUT:
            del self._pending[: len(self._pending) - MAX_PENDING_OUTPUT]
        self._flush()

    def _flush(self) -> None:
        if self._master is None:
            return
        while self._pending:
            try:
                written = os.write(self._master, self._pending)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.EIO:
                    log.warning("sim.pty.write_failed", device=self.device, error=str(exc))
                self._pending.clear()
                break
            del self._pending[:written]
        loop = asyncio.get_running_loop()
        if self._pending and not self._writer_armed:
            loop.add_writer(self._master, self._flush)
            self._writer_armed = True
        elif not self._pending and self._writer_armed:
            loop.remove_writer(self._master)
            self._writer_armed = False

    def close(self) -> None:
        if self._master is None:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._master)
        if self._writer_armed:
            loop.remove_writer(self._master)
            self._writer_armed = False
        self._pending.clear()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        if self.link_path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.link_path)
        log.debug("sim.pty.closed", device=self.device)


class _TcpConnection(asyncio.Protocol):
    def __init__(self, endpoint: TcpEndpoint) -> None:
        self._endpoint = endpoint
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._endpoint._attach(self)

    def data_received(self, data: bytes) -> None:
        self._endpoint._on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._endpoint._detach(self)


class TcpEndpoint:
    """A TCP port on 127.0.0.1 with one client at a time, as ser2net offers a serial port.

    A new client replaces the previous one (a client that died without closing must not
    lock the port forever).
    """

    def __init__(self, on_data: DataCallback, host: str = "127.0.0.1", port: int = 0) -> None:
        self._on_data = on_data
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._client: _TcpConnection | None = None

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    @property
    def is_open(self) -> bool:
        return self._server is not None

    async def open(self) -> None:
        if self._server is not None:
            return
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _TcpConnection(self), self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.debug("sim.tcp.open", url=self.url)

    def _attach(self, conn: _TcpConnection) -> None:
        if self._client is not None and self._client.transport is not None:
            self._client.transport.close()
        self._client = conn

    def _detach(self, conn: _TcpConnection) -> None:
        if self._client is conn:
            self._client = None

    def write(self, data: bytes) -> None:
        if self._client is not None and self._client.transport is not None:
            self._client.transport.write(data)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._client is not None and self._client.transport is not None:
            transport = self._client.transport
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0 makes close send RST: the client sees a reset, as with a dead link.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        self._client = None
        log.debug("sim.tcp.closed", url=self.url)
