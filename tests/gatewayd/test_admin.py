"""The admin CLI against a real daemon on the simulator: tables, changes, clear refusals."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drivers.clock import SystemClock
from drivers.sim import SimNetwork
from gatewayd import admin
from gatewayd.cli import build_parser
from gatewayd.config import load_config
from gatewayd.daemon import Daemon
from gatewayd.sdnotify import Notifier

TOKEN = "admin-token-0123456789"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


async def gatewayd(*argv: str) -> Result:
    """Run ``gatewayd ARGV`` (the admin client blocks: in a thread, off the daemon's loop)."""
    args = build_parser().parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(admin.run, args, out, err)
    return Result(code, out.getvalue(), err.getvalue())


def write_config(tmp_path: Path, port: int, modem_url: str) -> Path:
    (tmp_path / "token").write_text(TOKEN + "\n")
    path = tmp_path / "gatewayd.toml"
    path.write_text(
        'database = "gw.db"\n'
        f'[api]\nlisten = "127.0.0.1:{port}"\ntoken_files = ["token"]\n'
        f'[[modems]]\nname = "m1"\nport = "{modem_url}"\n'
        "[modems.limits]\nmax_per_minute = 100\nmax_per_hour = 1000\nmax_per_day = 10000\n"
    )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Path]:
    """A daemon on a known port (the CLI reads the port from the config); yields the config."""
    net = SimNetwork(clock=SystemClock(), seed=4, default_handset={"report_delay": 0.02})
    sim = await net.add_modem(profile="simcom", transport="tcp", latency=(0.0, 0.0))
    path = write_config(tmp_path, free_port(), sim.url)
    daemon = Daemon(load_config(path), clock=SystemClock(), notifier=Notifier(None))
    try:
        await daemon.start()
        assert daemon.gateway is not None
        changed = asyncio.Event()
        daemon.modems[0].on_state_change(lambda _state, _reason: changed.set())
        async with asyncio.timeout(10):
            while True:
                changed.clear()
                if daemon.gateway.workers[0].usable():
                    break
                await changed.wait()
        yield path
    finally:
        await daemon.stop()
        await net.close()


async def test_status_shows_the_modems_and_the_queue_as_a_table(running: Path) -> None:
    r = await gatewayd("status", "--config", str(running))
    assert r.code == 0, r.err
    header, row, *rest = r.out.splitlines()
    assert header.split()[:3] == ["MODEM", "STATE", "SIGNAL"]
    assert row.split()[:2] == ["m1", "ready"]
    assert "100/1000/10000" in row
    assert rest[-1] == "1/1 modems ready, queue depth 0"


async def test_send_then_list_messages_by_status(running: Path) -> None:
    r = await gatewayd("send", "--config", str(running), "+34611000001", "Tu pedido ha salido")
    assert r.code == 0, r.err
    status, message_id, detail = r.out.split(maxsplit=2)
    assert (status, detail.strip()) == ("queued", "(gsm7, 1 part)")
    async with asyncio.timeout(10):
        while True:
            listed = await gatewayd("messages", "--config", str(running), "--status", "delivered")
            if message_id in listed.out:
                break
            await asyncio.sleep(0.05)
    header, row = listed.out.splitlines()
    assert header.split() == ["ID", "CREATED", "(UTC)", "TO", "STATUS", "PARTS", "ERROR", "TEXT"]
    assert row.split()[3:7] == ["+34611000001", "delivered", "1", "-"]
    none = await gatewayd("messages", "--config", str(running), "--status", "failed")
    assert none.out.strip() == "no messages with status failed"


async def test_optouts_add_list_remove(running: Path) -> None:
    cfg = ["--config", str(running)]
    added = await gatewayd("optouts", *cfg, "add", "611000002", "--scope", "marketing")
    assert (added.code, added.out.strip()) == (0, "opted out +34611000002 (scope marketing)")
    listed = await gatewayd("optouts", *cfg, "list")
    assert listed.out.splitlines()[1].split()[:3] == ["+34611000002", "marketing", "api"]
    removed = await gatewayd("optouts", *cfg, "remove", "+34611000002")
    assert removed.code == 0
    assert (await gatewayd("optouts", *cfg, "list")).out.strip() == "no opt-outs"
    again = await gatewayd("optouts", *cfg, "remove", "+34611000002")
    assert again.code == 1
    assert "404" in again.err
    assert "not found" in again.err
    missing = await gatewayd("optouts", *cfg, "add")
    assert (missing.code, missing.err.strip()) == (1, "gatewayd: optouts add: a NUMBER is required")


async def test_modems_pause_and_resume(running: Path) -> None:
    cfg = ["--config", str(running)]
    paused = await gatewayd("modems", *cfg, "pause", "m1")
    assert paused.out.strip() == "m1: paused (state ready)"
    table = await gatewayd("status", *cfg)
    assert table.out.splitlines()[1].split()[-1] == "paused"
    assert table.out.splitlines()[-1] == "0/1 modems ready, queue depth 0"
    resumed = await gatewayd("modems", *cfg, "resume", "m1")
    assert resumed.out.strip() == "m1: taking work (state ready)"
    unknown = await gatewayd("modems", *cfg, "pause", "m9")
    assert unknown.code == 1
    assert "modem 'm9' not found" in unknown.err


async def test_a_bad_number_names_the_field(running: Path) -> None:
    r = await gatewayd("send", "--config", str(running), "not-a-number", "hola")
    assert r.code == 1
    assert "[to]" in r.err
    assert "422" in r.err


async def test_a_wrong_token_is_named_with_its_file(running: Path) -> None:
    (running.parent / "token").write_text("not-the-token\n")
    r = await gatewayd("status", "--config", str(running))
    assert r.code == 1
    assert "refused the token in" in r.err
    assert str(running.parent / "token") in r.err


async def test_no_daemon_listening_says_so_with_ex_unavailable(tmp_path: Path) -> None:
    path = write_config(tmp_path, free_port(), "socket://127.0.0.1:9")
    r = await gatewayd("status", "--config", str(path))
    assert r.code == admin.EX_UNAVAILABLE
    assert r.err.startswith("gatewayd: cannot reach the daemon at http://127.0.0.1:")
    assert "is it running?" in r.err


async def test_a_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    r = await gatewayd("status", "--config", str(tmp_path / "nope.toml"))
    assert r.code == 1
    assert "nope.toml" in r.err
    assert r.out == ""


def test_the_default_config_is_the_installed_one() -> None:
    args = build_parser().parse_args(["status"])
    assert args.config == Path("/etc/gatewayd/gatewayd.toml")
