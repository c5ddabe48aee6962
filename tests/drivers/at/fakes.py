"""Byte-level fake modems for channel tests: a script maps each command to raw reply bytes."""

from __future__ import annotations

import asyncio
import os
import tty
from collections.abc import Callable

Reply = Callable[[str], bytes | None]


def standard_reply(command: str) -> bytes | None:
    """A plain modem with echo off: OK to everything."""
    return b"\r\nOK\r\n"


class FakeModem:
    """Reads commands (CR-terminated, payloads Ctrl-Z-terminated), answers by ``reply``."""

    def __init__(self, reply: Reply = standard_reply) -> None:
        self.reply = reply
        self.received: list[str] = []
        self.raw = bytearray()
        self._buf = bytearray()
        self._send: Callable[[bytes], None] | None = None
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self.got_line = asyncio.Event()

    def inject(self, data: bytes) -> None:
        """Write bytes to the driver as if the modem printed them."""
        assert self._send is not None
        self._send(data)

    def _feed(self, data: bytes) -> None:
        self.raw += data
        self._buf += data
        while True:
            ends = [p for p in (self._buf.find(b"\r"), self._buf.find(b"\x1a")) if p >= 0]
            esc = self._buf.find(b"\x1b")
            if esc >= 0 and (not ends or esc < min(ends)):
                self.received.append("<ESC>")
                del self._buf[: esc + 1]
                self._answer("<ESC>")
                continue
            if not ends:
                return
            end = min(ends)
            kind = self._buf[end : end + 1]
            text = self._buf[:end].decode("ascii", errors="replace").strip()
            del self._buf[: end + 1]
            if kind == b"\x1a":
                text += "<CTRL-Z>"
            if not text:
                continue
            self.received.append(text)
            self.got_line.set()
            self._answer(text)

    def _answer(self, text: str) -> None:
        out = self.reply(text)
        if out and self._send is not None:
            self._send(out)

    async def start_tcp(self) -> str:
        """Listen on 127.0.0.1; return the ``socket://`` URL."""

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writer = writer
            self._send = writer.write
            while data := await reader.read(4096):
                self._feed(data)

        self._server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"socket://127.0.0.1:{port}"

    def start_pty(self) -> str:
        """Open a pty in raw mode; return the slave path (kept open, so reads never EIO)."""
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        loop = asyncio.get_running_loop()

        def readable() -> None:
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                return
            except OSError:
                loop.remove_reader(master)
                return
            self._feed(data)

        def send(data: bytes) -> None:
            os.write(master, data)

        loop.add_reader(master, readable)
        self._send = send
        return os.ttyname(slave)

    async def drop_client(self) -> None:
        """Close the TCP connection from the modem's side (the port 'disappears')."""
        if self._writer is not None:
            self._writer.close()

    async def close(self) -> None:
        """Stop serving."""
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
        if self._slave is not None:
            os.close(self._slave)
