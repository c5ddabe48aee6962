"""A driver-style client: pyserial-asyncio-fast on the event loop, against a simulator pty."""

from __future__ import annotations

import asyncio

import serial_asyncio_fast

from drivers.pdu import encode_submit
from drivers.sim import SimNetwork


async def test_send_over_serial_asyncio_fast(net: SimNetwork) -> None:
    modem = await net.add_modem("quectel")
    reader, writer = await serial_asyncio_fast.open_serial_connection(
        url=modem.url, baudrate=115200
    )
    try:
        async with asyncio.timeout(5):
            writer.write(b"ATE0\r")
            assert await reader.readuntil(b"OK\r\n") == b"ATE0\r\r\nOK\r\n"
            part = encode_submit("+34611111111", "asyncio", srr=False)[0]
            writer.write(f"AT+CMGS={part.length}\r".encode())
            assert await reader.readuntil(b"> ") == b"\r\n> "
            writer.write(part.hex().encode() + b"\x1a")
            answer = await reader.readuntil(b"OK\r\n")
        assert answer == f"\r\n+CMGS: {modem.sent[0].mr}\r\n\r\nOK\r\n".encode()
    finally:
        writer.close()
