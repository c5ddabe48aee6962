"""``python -m drivers.sim``: prints one line per modem, serves them, exits cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

from tests.drivers.sim.atclient import AtClient, info_lines


async def test_cli_runs_modems_until_sigterm(tmp_path: Path) -> None:
    links = tmp_path / "links"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "drivers.sim",
        "--modems",
        "2",
        "--link-dir",
        str(links),
        "--tcp-base-port",
        "0",
        "--latency",
        "0",
        "--profile",
        "quectel,huawei",
        "--control",
        "127.0.0.1:0",
        "--seed",
        "5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        lines = []
        async with asyncio.timeout(15):
            for _ in range(3):
                lines.append((await proc.stdout.readline()).decode().strip())
        pattern = (
            r"modem-(\d) profile=(\w+) msisdn=(\+\d+) iccid=(\d{20}) pty=(\S+) tcp=socket://\S+"
        )
        first, second = (re.fullmatch(pattern, line) for line in lines[:2])
        assert first is not None
        assert second is not None
        assert (first.group(2), second.group(2)) == ("quectel", "huawei")
        assert first.group(5) == str(links / "modem-1")
        assert await asyncio.to_thread(os.path.islink, first.group(5))
        assert lines[2].startswith("control http://127.0.0.1:")
        client = await AtClient.open(first.group(5))
        assert info_lines(await client.command("AT+QCCID"))[0] == f"+QCCID: {first.group(4)}"
        await client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            rc = await proc.wait()
    assert rc == 0
    assert not await asyncio.to_thread(os.path.exists, links / "modem-1")
