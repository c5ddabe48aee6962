"""A test client for simulated modems: pyserial in a worker thread, awaited with timeouts.

It opens the modem's pty path or ``socket://`` URL exactly as a driver or a third-party
tool would, so tests exercise the real byte streams.
"""

from __future__ import annotations

import asyncio
import re
import time

import serial

FINAL = re.compile(rb"\r\n(OK|ERROR|\+CM[ES] ERROR: [^\r]*|COMMAND NOT SUPPORT)\r\n")
PROMPT = b"\r\n> "


class AtClient:
    """One open port and the bytes read from it but not yet consumed."""

    def __init__(self, port: serial.Serial) -> None:
        self.port = port
        self.buffer = b""

    @classmethod
    async def open(cls, url: str) -> AtClient:
        """Open ``url`` (pty path or socket:// URL) off the event loop."""
        port = await asyncio.to_thread(serial.serial_for_url, url, timeout=0.05)
        return cls(port)

    async def close(self) -> None:
        """Close the port."""
        await asyncio.to_thread(self.port.close)

    async def write(self, data: bytes) -> None:
        """Write raw bytes."""
        await asyncio.to_thread(self.port.write, data)

    def _read_until(self, pattern: re.Pattern[bytes], timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            match = pattern.search(self.buffer)
            if match:
                out, self.buffer = self.buffer[: match.end()], self.buffer[match.end() :]
                return out
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {pattern.pattern!r} in {self.buffer!r}")
            # read(1) returns on the first byte (or pyserial's short timeout); then the rest.
            chunk = self.port.read(1)
            if chunk:
                chunk += self.port.read(self.port.in_waiting)
            self.buffer += chunk

    async def read_until(self, pattern: bytes | re.Pattern[bytes], seconds: float = 3.0) -> bytes:
        """Bytes up to and including ``pattern`` (a literal or a compiled regex)."""
        regex = re.compile(re.escape(pattern)) if isinstance(pattern, bytes) else pattern
        return await asyncio.to_thread(self._read_until, regex, seconds)

    async def command(self, line: str, seconds: float = 3.0) -> str:
        """Send ``line`` + CR and return everything up to its final result code."""
        await self.write(line.encode("latin-1") + b"\r")
        return (await self.read_until(FINAL, seconds)).decode("latin-1")


def final_of(response: str) -> str:
    """The final result code of a response."""
    match = FINAL.search(response.encode("latin-1"))
    assert match, response
    return match.group(1).decode()


def info_lines(response: str) -> list[str]:
    """The non-empty lines of a response before its final result (echo excluded)."""
    body = response[: response.rfind("\r\n", 0, len(response) - 2)]
    lines = [x for x in body.split("\r\n") if x]
    if lines and lines[0].upper().startswith("AT"):
        lines = lines[1:]
    return lines
