"""Prometheus metrics: counters from the core's events, gauges read at scrape time.

The first tests drive a real Gateway (SQLite) with fake modems and a manual clock; the last
one scrapes ``GET /metrics`` of a real daemon after traffic through the simulator and
compares the counters with the simulator's own per-SIM log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from drivers.clock import ManualClock, SystemClock
from drivers.modem import ModemState
from drivers.pdu import StatusReport, decode, encode_status_report
from drivers.sim import SimNetwork
from gatewayd.config import load_config
from gatewayd.config.model import Limits, WebhookConfig
from gatewayd.core import SubmitRequest
from gatewayd.core.observe import MessageQueued, WebhookAttempted
from gatewayd.core.webhooks import WebhookWorker
from gatewayd.daemon import Daemon
from gatewayd.metrics import Activity, GatewayMetrics
from gatewayd.sdnotify import Notifier
from gatewayd.store import Category
from tests.gatewayd.core.fakes import FakeModem, Harness, cms, config, modem_config, start

A = "+34600000001"
B = "+34600000002"
TOKEN = "metrics-token-0123456789"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, keyed by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def scrape(metrics: GatewayMetrics) -> Samples:
    return parse(metrics.render().decode())


def report(clock: ManualClock, mr: int, recipient: str, status: int = 0x00) -> StatusReport:
    rep = decode(
        encode_status_report(
            mr, recipient, scts=clock.now(), discharge_time=clock.now(), status=status
        )
    )
    assert isinstance(rep, StatusReport)
    return rep


@pytest.fixture
async def fakes(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Harness]:
    limited = Limits(max_per_minute=10, max_per_hour=100, max_per_day=500)
    cfg = config(tmp_path, modem_config("m1", limits=limited), modem_config("m2", pool="other"))
    h = await start(cfg, clock, [FakeModem("m1", "SIM1", clock), FakeModem("m2", "SIM2", clock)])
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


async def test_sends_reports_and_latencies_are_counted_per_modem(
    fakes: Harness, clock: ManualClock
) -> None:
    metrics = GatewayMetrics(fakes.gateway)
    m1 = fakes.modems["m1"]
    one = await fakes.gateway.submit(SubmitRequest(to=A, text="hola", modem="m1"))
    three = await fakes.gateway.submit(SubmitRequest(to=B, text="w" * 400, modem="m1"))
    await m1.wait_sends(4)
    await fakes.idle()
    await fakes.advance(30)
    for sent in m1.sends:
        await m1.report(report(clock, sent.mr, sent.recipient))
    s = scrape(metrics)
    assert value(s, "gatewayd_parts_sent_total", modem="m1") == 4
    assert value(s, "gatewayd_parts_sent_total", modem="m2") is None
    assert value(s, "gatewayd_messages_total", status="queued", modem="") == 2
    assert value(s, "gatewayd_messages_total", status="sent", modem="m1") == 2
    assert value(s, "gatewayd_messages_total", status="delivered", modem="m1") == 2
    assert value(s, "gatewayd_delivery_reports_total", modem="m1", outcome="delivered") == 4
    assert value(s, "gatewayd_send_duration_seconds_count", modem="m1") == 4
    # Every report came 30 s (manual clock) after its part was sent.
    assert value(s, "gatewayd_delivery_report_latency_seconds_count", modem="m1") == 4
    assert value(s, "gatewayd_delivery_report_latency_seconds_sum", modem="m1") == 120
    assert value(s, "gatewayd_delivery_report_latency_seconds_bucket", modem="m1", le="15.0") == 0
    assert value(s, "gatewayd_delivery_report_latency_seconds_bucket", modem="m1", le="30.0") == 4
    assert {one.id, three.id} == {m.id for m in (await fakes.gateway.list_messages()).items}


async def test_cms_errors_are_counted_by_code_and_a_permanent_one_fails_the_message(
    fakes: Harness,
) -> None:
    metrics = GatewayMetrics(fakes.gateway)
    m2 = fakes.modems["m2"]
    m2.failures.extend([cms(1)])
    await fakes.gateway.submit(SubmitRequest(to=A, text="x", modem="m2"))
    await m2.wait_attempts(1)
    await fakes.idle()
    s = scrape(metrics)
    assert value(s, "gatewayd_send_errors_total", modem="m2", code="cms_1") == 1
    assert value(s, "gatewayd_messages_total", status="failed", modem="m2") == 1
    assert value(s, "gatewayd_parts_sent_total", modem="m2") is None


async def test_a_failed_report_on_two_parts_counts_the_message_failed_once(
    fakes: Harness, clock: ManualClock
) -> None:
    metrics = GatewayMetrics(fakes.gateway)
    m1 = fakes.modems["m1"]
    await fakes.gateway.submit(SubmitRequest(to=B, text="w" * 300, modem="m1"))
    await m1.wait_sends(2)
    await fakes.idle()
    for sent in m1.sends:
        await m1.report(report(clock, sent.mr, sent.recipient, status=0x41))
    s = scrape(metrics)
    assert value(s, "gatewayd_delivery_reports_total", modem="m1", outcome="failed") == 2
    assert value(s, "gatewayd_messages_total", status="failed", modem="m1") == 1


async def test_inbound_optouts_and_webhooks(fakes: Harness, clock: ManualClock) -> None:
    metrics = GatewayMetrics(fakes.gateway)
    queued = await fakes.gateway.submit(
        SubmitRequest(to=A, text="later", send_at=clock.now() + timedelta(hours=1))
    )
    await fakes.modems["m2"].receive_text("+34699000001", "hola", clock.now())
    await fakes.modems["m1"].receive_text(A, "STOP", clock.now())
    await fakes.gateway.add_optout(B, source="api")
    await fakes.gateway.remove_optout(B)
    fakes.gateway.observers.emit(WebhookAttempted("message.sent", "delivered", clock.now()))
    fakes.gateway.observers.emit(WebhookAttempted("message.sent", "retry", clock.now()))
    fakes.gateway.observers.emit(WebhookAttempted("message.failed", "gave_up", clock.now()))
    s = scrape(metrics)
    assert value(s, "gatewayd_inbound_parts_total", modem="m2") == 1
    assert value(s, "gatewayd_inbound_parts_total", modem="m1") == 1
    assert value(s, "gatewayd_optouts_total", source="sms", scope="all") == 1
    assert value(s, "gatewayd_optouts_total", source="api", scope="all") == 1
    assert value(s, "gatewayd_optout_removals_total", source="api") == 1
    # The STOP cancelled the message queued for later.
    assert (await fakes.gateway.get_message(queued.id)).status.value == "cancelled"
    assert value(s, "gatewayd_messages_total", status="cancelled", modem="") == 1
    assert value(s, "gatewayd_webhook_deliveries_total", event="message.sent") == 1
    assert value(s, "gatewayd_webhook_failures_total", event="message.sent", gave_up="false") == 1
    assert value(s, "gatewayd_webhook_failures_total", event="message.failed", gave_up="true") == 1


async def test_the_webhook_worker_reports_its_attempts(fakes: Harness, clock: ManualClock) -> None:
    answers = [500, 200]

    async def hook(_request: web.Request) -> web.Response:
        return web.Response(status=answers.pop(0))

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    metrics = GatewayMetrics(fakes.gateway)
    worker = WebhookWorker(
        fakes.store,
        WebhookConfig(backoff_base_seconds=1.0),
        secret=None,
        clock=clock,
        observers=fakes.gateway.observers,
    )
    try:
        fakes.store.set_webhook_url(f"http://127.0.0.1:{runner.addresses[0][1]}/hook")
        await fakes.gateway.add_optout(A)
        assert await worker.deliver_due() == 1
        await clock.advance(1.0)
        assert await worker.deliver_due() == 1
    finally:
        await worker.stop()
        await runner.cleanup()
    s = scrape(metrics)
    assert value(s, "gatewayd_webhook_failures_total", event="optout.created", gave_up="false") == 1
    assert value(s, "gatewayd_webhook_deliveries_total", event="optout.created") == 1


async def test_state_gauges_are_read_at_scrape_time(fakes: Harness) -> None:
    metrics = GatewayMetrics(fakes.gateway)
    s = scrape(metrics)
    assert value(s, "gatewayd_modem_ready", modem="m1") == 1
    assert value(s, "gatewayd_modem_state", modem="m1", state="ready") == 1
    assert value(s, "gatewayd_modem_state", modem="m1", state="gone") == 0
    assert value(s, "gatewayd_modem_signal_dbm", modem="m1") == -70
    assert value(s, "gatewayd_modem_registered", modem="m1", registration="home") == 1
    assert value(s, "gatewayd_limiter_headroom_parts", modem="m1", window="minute") == 10
    assert value(s, "gatewayd_limiter_headroom_parts", modem="m1", window="day") == 500
    assert value(s, "gatewayd_limiter_headroom_parts", modem="m2", window="day") is None
    assert value(s, "gatewayd_queue_depth") == 0

    fakes.modems["m1"].set_state(ModemState.GONE, "unplugged")
    await fakes.gateway.pause("m2")
    later = await fakes.gateway.submit(SubmitRequest(to=A, text="waits"))
    s = scrape(metrics)
    assert value(s, "gatewayd_modem_ready", modem="m1") == 0
    assert value(s, "gatewayd_modem_state", modem="m1", state="gone") == 1
    assert value(s, "gatewayd_modem_paused", modem="m2") == 1
    assert value(s, "gatewayd_modem_ready", modem="m2") == 0
    assert value(s, "gatewayd_queue_depth") == 1
    assert later.status.value == "queued"


async def test_each_instance_has_its_own_registry_and_the_global_one_stays_clean(
    fakes: Harness, clock: ManualClock
) -> None:
    first, second = GatewayMetrics(fakes.gateway), GatewayMetrics(fakes.gateway)
    second.close()
    fakes.gateway.observers.emit(MessageQueued("x", Category.TRANSACTIONAL, 1, clock.now()))
    assert value(scrape(first), "gatewayd_messages_total", status="queued", modem="") == 1
    assert value(scrape(second), "gatewayd_messages_total", status="queued", modem="") is None
    assert not any(name.startswith("gatewayd_") for name in REGISTRY._names_to_collectors)


async def test_an_observer_that_raises_does_not_stop_the_others(
    fakes: Harness, clock: ManualClock
) -> None:
    def broken(_event: object) -> None:
        raise RuntimeError("observer bug")

    fakes.gateway.observers.subscribe(broken)
    metrics = GatewayMetrics(fakes.gateway)
    result = await fakes.gateway.submit(SubmitRequest(to=A, text="still accepted"))
    assert result.status.value == "queued"
    assert value(scrape(metrics), "gatewayd_messages_total", status="queued", modem="") == 1


def test_activity_keeps_24_hourly_buckets_and_rates() -> None:
    clock = ManualClock()
    start = clock.now()
    activity = Activity(start)
    for _ in range(4):
        activity.add(start, "sent")
    activity.add(start, "delivered")
    activity.add(start, "delivered")
    activity.add(start, "delivered")
    activity.add(start, "failed")
    activity.add(start + timedelta(hours=2), "optouts")
    summary = activity.summary(start + timedelta(hours=2))
    assert len(summary.hours) == 24
    assert (summary.sent, summary.delivered, summary.failed, summary.optouts) == (4, 3, 1, 1)
    assert summary.delivery_rate == 0.75
    assert summary.optout_rate == 0.25
    assert summary.since == start
    # A day later the first hour has left the window; only the opt-out remains.
    summary = activity.summary(start + timedelta(hours=24, minutes=1))
    assert (summary.sent, summary.optouts) == (0, 1)
    assert summary.delivery_rate is None
    assert summary.optout_rate is None


# -- a real daemon on the simulator --------------------------------------------------------


def daemon_config(tmp_path: Path, urls: list[str]) -> Path:
    (tmp_path / "token").write_text(TOKEN + "\n")
    modems = "".join(
        f'[[modems]]\nname = "m{i + 1}"\nport = "{url}"\n'
        "[modems.limits]\nmax_per_minute = 100\nmax_per_hour = 1000\nmax_per_day = 10000\n"
        for i, url in enumerate(urls)
    )
    path = tmp_path / "gatewayd.toml"
    path.write_text(
        'database = "gw.db"\n[api]\nlisten = "127.0.0.1:0"\ntoken_files = ["token"]\n' + modems
    )
    return path


async def test_scrape_after_simulated_traffic_matches_the_simulator(tmp_path: Path) -> None:
    net = SimNetwork(clock=SystemClock(), seed=11, default_handset={"report_delay": 0.02})
    sims = [
        await net.add_modem(profile="simcom", transport="tcp", latency=(0.0, 0.0)),
        await net.add_modem(profile="huawei", transport="tcp", latency=(0.0, 0.0)),
    ]
    daemon = Daemon(
        load_config(daemon_config(tmp_path, [s.url for s in sims])),
        clock=SystemClock(),
        notifier=Notifier(None),
    )
    texts = ["Pedido 1 enviado", "Envío 2 — " + "¡gracias por tu compra! " * 6, "x" * 200]
    try:
        await daemon.start()
        host, port = daemon.address
        url = f"http://{host}:{port}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=auth) as http:
            ids = []
            for i in range(6):
                body = {"to": f"+3461100000{i}", "text": texts[i % 3], "modem": f"m{i % 2 + 1}"}
                async with http.post(url + "/v1/messages", json=body) as r:
                    assert r.status == 202
                    ids.append((await r.json())["id"])
            async with asyncio.timeout(20):
                for mid in ids:
                    while True:
                        async with http.get(f"{url}/v1/messages/{mid}") as r:
                            if (await r.json())["status"] == "delivered":
                                break
                        await asyncio.sleep(0.02)
            await net.inject_inbound(to=sims[1].msisdn, sender="+34622000001", text="hola")
            async with asyncio.timeout(10):
                while True:
                    async with http.get(url + "/v1/inbound") as r:
                        if (await r.json())["items"]:
                            break
                    await asyncio.sleep(0.02)
            async with http.get(url + "/metrics") as r:
                assert r.status == 200
                assert r.content_type == "text/plain"
                s = parse(await r.text())
            async with aiohttp.ClientSession() as anonymous, anonymous.get(url + "/metrics") as r:
                assert r.status == 401
    finally:
        await daemon.stop()
        await net.close()
    for i, sim in enumerate(sims):
        name = f"m{i + 1}"
        assert len(sim.sent) > 0
        assert value(s, "gatewayd_parts_sent_total", modem=name) == len(sim.sent)
        assert value(s, "gatewayd_send_duration_seconds_count", modem=name) == len(sim.sent)
        assert value(s, "gatewayd_delivery_reports_total", modem=name, outcome="delivered") == len(
            sim.sent
        )
        assert value(s, "gatewayd_messages_total", status="delivered", modem=name) == 3
    assert value(s, "gatewayd_messages_total", status="queued", modem="") == 6
    assert value(s, "gatewayd_inbound_parts_total", modem="m2") == 1
    assert value(s, "gatewayd_queue_depth") == 0
    assert value(s, "gatewayd_modem_ready", modem="m1") == 1
