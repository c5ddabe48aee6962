"""The HTTP control API, served on 127.0.0.1 against a live network."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from drivers.clock import ManualClock
from drivers.pdu import encode_submit
from drivers.sim import SimNetwork
from drivers.sim.control_http import bound_port, start_control
from tests.drivers.sim.atclient import PROMPT, AtClient


@pytest.fixture
async def api(net: SimNetwork) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    runner = await start_control(net, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{bound_port(runner)}"
    async with aiohttp.ClientSession() as session:
        yield session, base
    await runner.cleanup()


async def test_inbound_faults_and_logs(
    clock: ManualClock, net: SimNetwork, api: tuple[aiohttp.ClientSession, str]
) -> None:
    session, base = api
    modem = await net.add_modem("generic")
    async with session.get(f"{base}/modems") as r:
        [info] = await r.json()
    assert (info["id"], info["msisdn"], info["iccid"], info["url"]) == (
        modem.id,
        modem.msisdn,
        modem.iccid,
        modem.url,
    )
    body = {"to": modem.msisdn, "sender": "+34611111111", "text": "desde http"}
    async with session.post(f"{base}/inbound", json=body) as r:
        assert r.status == 200
        assert await r.json() == {"parts": 1}
    assert modem.stores["SM"].used == 1

    async with session.post(f"{base}/handsets", json={"number": "+34633333333"}) as r:
        assert r.status == 201
    client = await AtClient.open(modem.url)
    await client.command("ATE0")
    part = encode_submit("+34633333333", "hola api", srr=False)[0]
    await client.write(f"AT+CMGS={part.length}\r".encode())
    await client.read_until(PROMPT)
    await client.write(part.hex().encode() + b"\x1a")
    await client.read_until(b"OK\r\n")
    async with session.get(f"{base}/modems/{modem.id}/sent") as r:
        [sent] = await r.json()
    assert (sent["recipient"], sent["text"], sent["iccid"]) == (
        "+34633333333",
        "hola api",
        modem.iccid,
    )
    async with session.get(f"{base}/handsets/+34633333333") as r:
        assert [m["text"] for m in (await r.json())["received"]] == ["hola api"]
    async with session.get(f"{base}/sent") as r:
        assert len(await r.json()) == 1

    async with session.post(
        f"{base}/modems/{modem.iccid}/faults", json={"cms_error_rate": 1, "latency": [0, 0]}
    ) as r:
        assert r.status == 200
    assert modem.faults.cms_error_rate == 1.0
    async with session.post(f"{base}/modems/{modem.id}/urc", json={"lines": ["RING"]}) as r:
        assert r.status == 200
    assert await client.read_until(b"RING\r\n") == b"\r\nRING\r\n"
    async with session.post(f"{base}/modems/{modem.id}/registration", json={"stat": 0}) as r:
        assert (await r.json())["registration"] == 0
    await client.close()


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/inbound", {"to": "+34600000001", "sender": "x"}, 400, "text"),
        ("/inbound", {"to": "+34699999999", "sender": "x", "text": "y"}, 404, "to"),
        ("/modems/modem-1/faults", {"latency": [3, 1]}, 400, "faults.latency"),
        ("/modems/modem-1/faults", {"speed": 1}, 400, "faults: unknown setting"),
        ("/modems/nope/faults", {}, 404, "id"),
        ("/modems/modem-1/registration", {"stat": 9}, 400, "stat"),
        ("/handsets", {"number": "+346", "report": "lost"}, 400, "report"),
        ("/handsets", {"number": "+346", "colour": "red"}, 400, "colour"),
    ],
)
async def test_bad_requests_name_the_field(
    net: SimNetwork,
    api: tuple[aiohttp.ClientSession, str],
    path: str,
    body: dict[str, object],
    status: int,
    field: str,
) -> None:
    session, base = api
    await net.add_modem("generic")
    async with session.post(base + path, json=body) as r:
        assert r.status == status
        assert (await r.json())["error"].startswith(field)


async def test_port_actions(net: SimNetwork, api: tuple[aiohttp.ClientSession, str]) -> None:
    session, base = api
    modem = await net.add_modem("simcom", transport="tcp")
    client = await AtClient.open(modem.url)
    async with session.post(f"{base}/modems/{modem.id}/reboot") as r:
        assert r.status == 200
    await client.read_until(b"SMS Ready\r\n")
    await client.close()
    async with session.post(f"{base}/modems/{modem.id}/disconnect") as r:
        assert r.status == 200
    async with session.post(f"{base}/modems/{modem.id}/reconnect", json={}) as r:
        assert (await r.json())["tcp"] == modem.url
    client = await AtClient.open(modem.url)
    assert await client.command("AT") == "AT\r\r\nOK\r\n"
    await client.close()
