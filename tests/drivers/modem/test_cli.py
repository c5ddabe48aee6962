"""``python -m drivers.modem`` against a simulated modem, as a subprocess."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drivers.clock import SystemClock
from drivers.sim import SimModem, SimNetwork

HANDSET = "+34611111111"


@pytest.fixture
async def live() -> AsyncIterator[tuple[SimNetwork, SimModem]]:
    network = SimNetwork(clock=SystemClock(), seed=3, default_latency=(0.0, 0.0))
    modem = await network.add_modem("quectel", transport="tcp", pin="4321")
    yield network, modem
    await network.close()


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "drivers.modem",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _run(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    proc = await _spawn(*args)
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    return proc.returncode or 0, lines, err.decode()


@pytest.fixture
def pin_file(tmp_path: Path) -> str:
    path = tmp_path / "pin"
    path.write_text("4321\n", encoding="utf-8")
    return str(path)


async def test_info_prints_json(live: tuple[SimNetwork, SimModem], pin_file: str) -> None:
    _, m = live
    code, lines, err = await _run(m.tcp_url or "", "--pin-file", pin_file, "info")
    assert code == 0, err
    info = lines[0]
    assert (info["iccid"], info["imei"], info["imsi"]) == (m.iccid, m.imei, m.imsi)
    assert (info["profile"], info["state"], info["registration"]) == ("quectel", "ready", "home")


async def test_info_without_pin_reports_failure(live: tuple[SimNetwork, SimModem]) -> None:
    _, m = live
    code, lines, err = await _run(m.tcp_url or "", "info")
    assert code == 1
    assert lines == []
    assert "PIN required" in err


async def test_send_prints_mrs(live: tuple[SimNetwork, SimModem], pin_file: str) -> None:
    _, m = live
    text = "x" * 200  # two GSM 7-bit parts
    code, lines, err = await _run(
        m.tcp_url or "", "--pin-file", pin_file, "--profile", "quectel", "send", HANDSET, text
    )
    assert code == 0, err
    assert lines[0]["parts"] == 2
    assert lines[0]["mrs"] == [r.mr for r in m.sent]


async def test_listen_prints_inbound_until_interrupted(
    live: tuple[SimNetwork, SimModem], pin_file: str
) -> None:
    net, m = live
    proc = await _spawn(m.tcp_url or "", "--pin-file", pin_file, "listen")
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        first = json.loads(await proc.stdout.readline())
        assert first["event"] == "listening"
        assert first["identity"] == m.iccid
        await net.inject_inbound(to=m.msisdn, sender=HANDSET, text="hola desde fuera")
        sms = json.loads(await proc.stdout.readline())
        proc.send_signal(signal.SIGINT)
        code = await proc.wait()
    assert (sms["event"], sms["sender"], sms["text"]) == ("sms", HANDSET, "hola desde fuera")
    # The start-up sweep may list it before its +CMTI is read: either way, once.
    assert sms["via"] in ("cmti", "sweep")
    assert code == 0
