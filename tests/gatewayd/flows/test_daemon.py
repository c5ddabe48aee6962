"""The daemon with flows on the simulated modem network: events over the API, the SMS on the
simulated handset, its short link on the separate listener, metrics over the API."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from drivers.clock import SystemClock
from drivers.sim import SimNetwork
from gatewayd.config import ConfigError, load_config
from gatewayd.daemon import Daemon
from gatewayd.sdnotify import Notifier
from tests.gatewayd.flows.harness import EXAMPLE_FLOWS, event

TOKEN = "flows-token-0123456789"
PHONE = "+34611000009"


@dataclass
class Stack:
    daemon: Daemon
    net: SimNetwork
    session: aiohttp.ClientSession

    async def call(
        self, method: str, path: str, body: Any = None, *, token: str = TOKEN
    ) -> tuple[int, Any]:
        host, port = self.daemon.address
        async with self.session.request(
            method,
            f"http://{host}:{port}{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    clock = SystemClock()
    net = SimNetwork(clock=clock, seed=3, default_handset={"report_delay": 0.05})
    sim = await net.add_modem(profile="simcom", transport="tcp", latency=(0.0, 0.0))
    net.add_handset(PHONE, report_delay=0.05)
    (tmp_path / "token").write_text(TOKEN)
    shutil.copy(EXAMPLE_FLOWS, tmp_path / "flows.toml")
    path = tmp_path / "gatewayd.toml"
    path.write_text(
        'database = "gw.db"\n'
        '[api]\nlisten = "127.0.0.1:0"\ntoken_files = ["token"]\n'
        f'[[modems]]\nname = "m1"\nport = "{sim.url}"\n'
        "[modems.limits]\nmax_per_minute = 100\n"
        '[flows]\nfile = "flows.toml"\nshort_link_listen = "127.0.0.1:0"\n'
        'public_base_url = "https://go.example.com"\nbrand = "Tienda"\n'
        # Real time here: the click comes well under the scanner window after delivery.
        "preview_window_seconds = 0\nmin_gap_seconds = 0\n"
        # The test runs at any hour: no quiet hours (transactional ones ignore them anyway).
        'quiet_start = "00:00"\nquiet_end = "00:00"\n'
    )
    daemon = Daemon(load_config(path), clock=clock, notifier=Notifier(None))
    try:
        await daemon.start()
        async with aiohttp.ClientSession() as session:
            yield Stack(daemon, net, session)
    finally:
        await daemon.stop()
        await net.close()


async def test_an_order_event_becomes_an_sms_whose_link_click_is_counted(stack: Stack) -> None:
    now = datetime.now(UTC)
    body = event("order.placed", at=now, phone=PHONE, order="A-77")
    status, reply = await stack.call("POST", "/v1/events", body)
    assert status == 202
    assert reply["enrolled"] == ["order_confirmation", "reengagement"]
    status, again = await stack.call("POST", "/v1/events", body)
    assert (status, again["duplicate"], again["enrolled"]) == (200, True, [])

    [sms] = await stack.net.handset(PHONE).wait_received(1)
    assert sms.text.startswith("Tienda: Hola Ana, hemos recibido tu pedido A-77")
    match = re.search(r"https://go\.example\.com/s/([A-Za-z0-9_-]{11})", sms.text)
    assert match is not None

    host, port = stack.daemon.short_link_address
    assert (host, port) != stack.daemon.address
    url = f"http://{host}:{port}/s/{match.group(1)}"
    async with stack.session.get(
        url, allow_redirects=False, headers={"User-Agent": "Mozilla/5.0 (Linux; Android 14)"}
    ) as resp:
        assert resp.status == 302
        assert resp.headers["Location"] == "https://shop.example.com/orders/A-77"
    # The API's routes are not reachable on the short-link listener.
    async with stack.session.get(f"http://{host}:{port}/v1/flows/metrics") as resp:
        assert resp.status == 404

    since = (now - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    status, metrics = await stack.call("GET", f"/v1/flows/metrics?since={since}")
    assert status == 200
    flow = next(f for f in metrics["flows"] if f["flow"] == "order_confirmation")
    assert flow["enrolled"] == 1
    [step] = flow["steps"]
    assert (step["step"], step["sent"], step["clicked"]) == ("order_confirmation", 1, 1)
    assert step["rates"]["clicked"] == 1.0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["customer"].update(phone="12"), "customer.phone"),
        (lambda b: b["order"]["items"][0].pop("kind"), "order.items[0].kind"),
        (lambda b: b["customer"]["consent"].pop("marketing"), "customer.consent.marketing"),
        (lambda b: b.update(occurred_at="yesterday"), "occurred_at"),
        (lambda b: b.pop("order"), "order"),
        (lambda b: b.update(colour="red"), "colour"),
    ],
)
async def test_a_bad_event_is_422_naming_the_field(stack: Stack, change: Any, field: str) -> None:
    body = event("order.placed", at=datetime.now(UTC), phone=PHONE)
    change(body)
    status, reply = await stack.call("POST", "/v1/events", body)
    assert status == 422
    assert reply["error"]["code"] == "validation_error"
    assert reply["error"]["field"] == field


async def test_unknown_types_are_accepted_and_start_nothing(stack: Stack) -> None:
    body = event("cart.abandoned", at=datetime.now(UTC), phone=PHONE, with_order=False)
    status, reply = await stack.call("POST", "/v1/events", body)
    assert (status, reply["enrolled"], reply["duplicate"]) == (202, [], False)
    status, reply = await stack.call("POST", "/v1/events", body, token="wrong")
    assert status == 401
    status, reply = await stack.call("GET", "/v1/flows/metrics?since=yesterday")
    assert (status, reply["error"]["field"]) == (422, "since")


async def test_a_bad_flows_file_stops_the_start_naming_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "flows.toml").write_text('[[flows]]\nname = "x"\ntrigger = "order.placed"\n')
    path = tmp_path / "gatewayd.toml"
    path.write_text(
        'database = "gw.db"\n[api]\nlisten = "127.0.0.1:0"\ntoken_files = ["token"]\n'
        '[flows]\nfile = "flows.toml"\nshort_link_listen = "127.0.0.1:0"\n'
    )
    daemon = Daemon(load_config(path), clock=SystemClock(), notifier=Notifier(None))
    with pytest.raises(ConfigError) as info:
        await daemon.start()
    assert info.value.source == tmp_path / "flows.toml"
    assert info.value.key == "flows[0].steps"
    await daemon.stop()
