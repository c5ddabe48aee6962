"""A third-party tool against the simulator: gammu identify / sendsms / getallsms.

Skipped when gammu is not installed, except under CI (CI=true), where it must be there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from drivers.sim import SimNetwork

GAMMU = shutil.which("gammu")

if GAMMU is None and os.environ.get("CI", "").lower() not in ("", "0", "false"):
    raise RuntimeError("gammu is required under CI (apt-get install gammu)")

pytestmark = pytest.mark.skipif(GAMMU is None, reason="gammu not installed")


async def _gammu(config: Path, *args: str) -> str:
    assert GAMMU is not None
    proc = await asyncio.create_subprocess_exec(
        GAMMU,
        "-c",
        str(config),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(30):
        out, _ = await proc.communicate()
    text = out.decode("utf-8", errors="replace")
    assert proc.returncode == 0, text
    return text


async def test_gammu_identify_send_and_read(net: SimNetwork, tmp_path: Path) -> None:
    # Huawei: the personality furthest from plain 27.005 (index 0, COMMAND NOT SUPPORT).
    # gammu pauses between the characters it writes: each run takes a few seconds.
    link = tmp_path / "modem"
    modem = await net.add_modem("huawei", link_path=str(link))
    config = tmp_path / "gammurc"
    config.write_text(f"[gammu]\ndevice = {link}\nconnection = at\n")

    identify = await _gammu(config, "identify")
    assert modem.imei in identify
    assert modem.imsi in identify

    sent = await _gammu(config, "sendsms", "TEXT", "+34611111111", "-text", "hola gammu")
    assert f"message reference={modem.sent[0].mr}" in sent
    assert [m.text for m in net.handset("+34611111111").received] == ["hola gammu"]

    await net.inject_inbound(to=modem.msisdn, sender="+34622222222", text="¿llegó? sí")
    listing = await _gammu(config, "getallsms")
    assert "¿llegó? sí" in listing
    assert '"+34622222222"' in listing
