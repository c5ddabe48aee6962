"""Per-SIM limits as the network sees them: checked on the simulator's own send log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from pathlib import Path

import pytest

from drivers.clock import SystemClock
from drivers.sim import SentRecord, SimNetwork
from tests.e2e.daemon import running_daemon, write_config


def most_in_any_window(records: Iterable[SentRecord], seconds: float) -> int:
    """The most parts one SIM sent in any window of ``seconds`` (half-open) of its log."""
    by_sim: dict[str, list[datetime]] = {}
    for r in records:
        by_sim.setdefault(r.iccid, []).append(r.time)
    most = 0
    for times in by_sim.values():
        times.sort()
        j = 0
        for i, start in enumerate(times):
            j = max(j, i)
            while j < len(times) and (times[j] - start).total_seconds() < seconds:
                j += 1
            most = max(most, j - i)
    return most


@pytest.fixture
async def net() -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=SystemClock(), seed=5, default_handset={"report_delay": 0.05})
    yield network
    await network.close()


@pytest.mark.slow
async def test_three_per_minute_hold_in_every_window_across_a_sigkill(
    net: SimNetwork, tmp_path: Path
) -> None:
    """3 per minute, 6 parts queued, SIGKILL with a part in flight, restart: never 4 in 60 s.

    The clocks are real (the daemon has no clock to inject from outside), so this waits
    out one window: about 65 s. The part in flight takes 2 s in the modem, the parts after
    the restart 0.05 s: a count kept at the moment Ctrl-Z was written would let the first
    part after the window slide go 2 s early.
    """
    sim = await net.add_modem(profile="quectel", transport="tcp", latency=(2.0, 2.0))
    config = write_config(tmp_path, [sim.url])
    config.write_text(config.read_text().replace("max_per_minute = 100", "max_per_minute = 3"))
    texts = [f"Pedido {i}: en camino" for i in range(5)]
    texts[3] = "Pedido 3: " + "recogida en tienda disponible hasta el viernes. " * 4  # 2 parts
    accepted = []
    async with running_daemon(config) as d:
        for i, text in enumerate(texts):
            status, body = await d.call(
                "POST", "/v1/messages", {"to": f"+346113000{i:02d}", "text": text}
            )
            assert status == 202, body
            accepted.append(body)
        assert [m["segments"] for m in accepted] == [1, 1, 1, 2, 1]
        # SIGKILL while the third part is in the modem: the window is full with it.
        await sim.wait_sent(2, timeout=20)
        await sim.wait_event("latency", count=3, timeout=20)
        d.proc.kill()
        await d.proc.wait()
    await sim.wait_sent(3, timeout=5)
    sim.set_fault(latency=(0.05, 0.05))
    async with running_daemon(config) as d:
        for msg in accepted:
            await d.wait_for(
                f"/v1/messages/{msg['id']}",
                lambda b: b["status"] in ("delivered", "unconfirmed"),
                within=90,
            )
        status, third = await d.call("GET", f"/v1/messages/{accepted[2]['id']}")
        assert third["status"] == "unconfirmed"
    assert [(r.recipient[-2:], r.part) for r in sim.sent] == [
        ("00", 1),
        ("01", 1),
        ("02", 1),
        ("03", 1),
        ("03", 2),
        ("04", 1),
    ]
    assert most_in_any_window(sim.sent, 60) == 3
