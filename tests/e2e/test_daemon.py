"""The real daemon, as a subprocess, on the simulator over ptys and over TCP."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drivers.clock import SystemClock
from drivers.sim import SimNetwork
from tests.e2e.daemon import Running, running_daemon, write_config

OK = "+34611000001"
FAILS = "+34633000003"
QUITS = "+34622000002"

TEXTS = {
    "gsm7 single": "Tu pedido 1042 ha salido del almacén",
    "gsm7 multipart": "Pedido 1042: " + "recogida en tienda disponible hasta el viernes. " * 5,
    "ucs2 single": "Envío confirmado: llegará mañana",
    "ucs2 multipart": "Envío 1042 — " + "¡Gracias por tu compra! Te avisaremos al llegar. " * 3,
}


@pytest.fixture
async def net() -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=SystemClock(), seed=3, default_handset={"report_delay": 0.05})
    network.add_handset(FAILS, report="failed", report_delay=0.05)
    network.add_handset(QUITS, report_delay=0.05, replies=["Baja"], reply_delay=0.2)
    yield network
    await network.close()


async def start(net: SimNetwork, tmp_path: Path, transport: str) -> tuple[Path, str]:
    sim = await net.add_modem(profile="simcom", transport=transport, latency=(0.0, 0.0))
    return write_config(tmp_path, [sim.url]), sim.url


async def submit(d: Running, to: str, text: str, **extra: object) -> dict[str, object]:
    status, body = await d.call("POST", "/v1/messages", {"to": to, "text": text, **extra})
    assert status == 202, body
    return body  # type: ignore[no-any-return]


@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_gsm_and_ucs2_single_and_multipart_reach_the_handset(
    net: SimNetwork, tmp_path: Path, transport: str
) -> None:
    config, url = await start(net, tmp_path, transport)
    assert url.startswith("/dev/" if transport == "pty" else "socket://127.0.0.1:")
    async with running_daemon(config) as d:
        accepted = {}
        for label, text in TEXTS.items():
            accepted[label] = await submit(d, OK, text)
        assert {k: (v["encoding"], v["segments"]) for k, v in accepted.items()} == {
            "gsm7 single": ("gsm7", 1),
            "gsm7 multipart": ("gsm7", 2),
            "ucs2 single": ("ucs2", 1),
            "ucs2 multipart": ("ucs2", 3),
        }
        for result in accepted.values():
            await d.wait_for(f"/v1/messages/{result['id']}", lambda b: b["status"] == "delivered")
        received = await net.handset(OK).wait_received(len(TEXTS), timeout=5)
        assert sorted(r.text for r in received) == sorted(TEXTS.values())
        assert {r.text: r.parts for r in received}[TEXTS["ucs2 multipart"]] == 3


async def test_failed_reports_fail_the_message_with_the_code(
    net: SimNetwork, tmp_path: Path
) -> None:
    config, _ = await start(net, tmp_path, "pty")
    async with running_daemon(config) as d:
        sent = await submit(d, FAILS, "Tu pedido está listo")
        body = await d.wait_for(f"/v1/messages/{sent['id']}", lambda b: b["status"] == "failed")
        part = body["parts"][0]
        assert part["status"] == "failed"
        # The status report's TP-ST, as the code of the failure.
        assert part["error_code"]
        assert body["error_code"] == part["error_code"]


async def test_baja_opts_out_cancels_queued_and_blocks_new_messages(
    net: SimNetwork, tmp_path: Path
) -> None:
    config, _ = await start(net, tmp_path, "pty")
    async with running_daemon(config) as d:
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        queued = await submit(d, QUITS, "Oferta de mañana", send_at=later)
        first = await submit(d, QUITS, "Tu pedido ha salido")
        await d.wait_for(f"/v1/messages/{first['id']}", lambda b: b["status"] == "delivered")
        optouts = await d.wait_for(
            "/v1/optouts", lambda b: any(o["number"] == QUITS for o in b["items"])
        )
        assert [o["scope"] for o in optouts["items"] if o["number"] == QUITS] == ["all"]
        await d.wait_for(f"/v1/messages/{queued['id']}", lambda b: b["status"] == "cancelled")
        status, body = await d.call("POST", "/v1/messages", {"to": QUITS, "text": "¿Sigues ahí?"})
        assert (status, body["error"]["code"]) == (409, "opted_out")
        inbound = await d.wait_for("/v1/inbound", lambda b: len(b["items"]) >= 1)
        assert inbound["items"][0]["text"] == "Baja"


async def test_idempotent_resubmission_and_sigterm_exit(net: SimNetwork, tmp_path: Path) -> None:
    config, _ = await start(net, tmp_path, "tcp")
    async with running_daemon(config) as d:
        body = {"to": OK, "text": "Pedido 77"}
        s1, first = await d.call("POST", "/v1/messages", body, **{"Idempotency-Key": "order-77"})
        s2, again = await d.call("POST", "/v1/messages", body, **{"Idempotency-Key": "order-77"})
        assert (s1, s2) == (202, 202)
        assert again["id"] == first["id"]
        await d.wait_for(f"/v1/messages/{first['id']}", lambda b: b["status"] == "delivered")
        assert len(net.handset(OK).received) == 1
        began = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            code = await d.proc.wait()
        assert code == 0
        assert time.monotonic() - began < 10
        assert any('"gatewayd.stopped"' in line for line in d.lines)


async def test_sighup_applies_limits_and_names_what_needs_a_restart(
    net: SimNetwork, tmp_path: Path
) -> None:
    config, _ = await start(net, tmp_path, "tcp")
    async with running_daemon(config) as d:
        text = config.read_text()
        config.write_text(
            text.replace("max_per_minute = 100", "max_per_minute = 7").replace(
                'listen = "127.0.0.1:0"', 'listen = "127.0.0.1:1"'
            )
        )
        d.proc.send_signal(signal.SIGHUP)
        refused = await d.wait_line('"config.reload_refused"')
        reloaded = await d.wait_line('"config.reloaded"')
        assert "modems.m1" in reloaded
        assert "api.listen" in refused
        # Still serving on the old address.
        modems = await d.wait_for("/v1/modems", lambda b: len(b["modems"]) == 1)
        assert modems["modems"][0]["headroom"]["minute"] <= 7
        # A broken file is refused whole, naming the key; the running config stays.
        config.write_text(text.replace("max_per_minute = 100", "max_per_minute = 0"))
        d.proc.send_signal(signal.SIGHUP)
        failed = await d.wait_line('"config.reload_failed"')
        assert "modems[0].limits.max_per_minute" in failed
        status, _ = await d.call("GET", "/v1/modems")
        assert status == 200


async def test_sigterm_lets_the_send_in_flight_finish(net: SimNetwork, tmp_path: Path) -> None:
    sim = await net.add_modem(profile="simcom", transport="tcp", latency=(2.0, 2.0))
    config = write_config(tmp_path, [sim.url])
    async with running_daemon(config) as d:
        sent = await submit(d, OK, "En camino")
        path = f"/v1/messages/{sent['id']}"
        await d.wait_for(path, lambda b: b["status"] == "sending")
        began = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await d.proc.wait() == 0
        assert time.monotonic() - began < 10
    (received,) = await net.handset(OK).wait_received(1)
    assert received.text == "En camino"
    # After a restart the store shows it sent, not stuck in `sending` and not sent twice.
    async with running_daemon(config) as d:
        body = await d.wait_for(path, lambda b: b["status"] in ("sent", "delivered"))
        assert body["parts"][0]["mr"] is not None
    assert len(net.handset(OK).received) == 1


async def test_a_port_in_use_exits_1_with_the_reason(net: SimNetwork, tmp_path: Path) -> None:
    config, _ = await start(net, tmp_path, "tcp")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(config.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gatewayd",
            "run",
            "--config",
            str(config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(20):
            out, _ = await proc.communicate()
    assert proc.returncode == 1
    assert b'"gatewayd.start_failed"' in out
