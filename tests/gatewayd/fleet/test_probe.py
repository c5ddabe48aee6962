"""Probing a port: who holds it, what a busy port's report says, silence is not an AT port,
and settings found by ICCID, else IMEI, else the defaults."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatewayd.config.model import GatewayConfig, Limits, SimConfig
from gatewayd.fleet.binding import modem_config
from gatewayd.fleet.probe import PortBusy, ProbeFailed, ProbeResult, port_holders, probe


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def test_port_holders_names_the_process(pty: tuple[int, str], tmp_path: Path) -> None:
    _, device = pty
    link = tmp_path / "usb-Huawei-if00-port0"
    link.symlink_to(device)
    with open(device, "rb") as held:
        proc = subprocess.Popen(["sleep", "30"], stdin=held)
    try:
        assert f"sleep (pid {proc.pid})" in port_holders(str(link))
    finally:
        proc.kill()
        proc.wait()


def test_busy_report_names_modemmanager_and_the_fix() -> None:
    busy = PortBusy("/dev/serial/by-id/usb-x", ("ModemManager (pid 812)",))
    assert "ModemManager (pid 812)" in busy.reason
    assert "ID_MM_DEVICE_IGNORE=1" in busy.reason
    assert busy.retry is False


async def test_a_silent_port_is_not_an_at_port(pty: tuple[int, str]) -> None:
    _, device = pty
    with pytest.raises(ProbeFailed) as caught:
        await probe(device, limit=0.2)
    assert "not an AT port" in caught.value.reason
    assert caught.value.retry is False


def test_settings_by_iccid_then_imei_then_defaults() -> None:
    by_iccid = SimConfig(iccid="89340710000000000013", name="blue", pool="es", limits=Limits(1))
    by_imei = SimConfig(imei="350050000000019", name="red")
    config = GatewayConfig(database="x.db", sims=(by_iccid, by_imei))
    found = ProbeResult("/dev/x", "huawei", "350050000000019", "89340710000000000013", "huawei")
    cfg = modem_config(config, found)
    assert (cfg.name, cfg.pool, cfg.limits.max_per_minute) == ("blue", "es", 1)
    no_sim = ProbeResult("/dev/x", "huawei", "350050000000019", None, "huawei")
    assert modem_config(config, no_sim).name == "red"
    other = ProbeResult("/dev/y", None, "350000000000001", "89340710000000000099", "generic")
    cfg = modem_config(config, other)
    assert (cfg.name, cfg.pool) == ("sim-000099", "default")
    assert cfg.limits == config.discovery.limits
