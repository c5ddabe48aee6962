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
async def test_three_per_minute_hold_in_every_window_across_faults(
    net: SimNetwork, tmp_path: Path
) -> None:
    """3 per minute per SIM, 5 parts queued for each of two SIMs: never 4 in any 60 s.

    The clocks are real (the daemon has no clock to inject from outside), so this waits out
    one window: about 65 s. Each SIM loses its third part to a fault after Ctrl-Z while the
    modem holds it for 2 s: SIM X by a SIGKILL of the daemon, SIM Y by its port vanishing
    (the part becomes unconfirmed while the daemon runs; then the daemon is killed too).
    The parts after the restart take 0.05 s: a count kept at the moment Ctrl-Z was written
    would let the first part after the window slides go up to 2 s early.
    """
    # Quectel keeps status reports in storage (+CDSI): those that come while Y's port is
    # gone wait there for the sweep, so every message ends delivered or unconfirmed.
    x = await net.add_modem(profile="quectel", transport="tcp", latency=(2.0, 2.0))
    y = await net.add_modem(profile="quectel", transport="tcp", latency=(2.0, 2.0))
    config = write_config(tmp_path, [x.url, y.url])
    config.write_text(config.read_text().replace("max_per_minute = 100", "max_per_minute = 3"))
    two_parts = "recogida en tienda disponible hasta el viernes. " * 4
    plan = [("m1", f"Pedido {i}: " + (two_parts if i == 3 else "en camino")) for i in range(4)]
    plan += [("m2", f"Pedido {i}: en camino") for i in range(4, 9)]
    accepted = []
    async with running_daemon(config) as d:
        await d.wait_for(
            "/v1/modems", lambda body: all(m["state"] == "ready" for m in body["modems"])
        )
        for i, (modem, text) in enumerate(plan):
            status, body = await d.call(
                "POST", "/v1/messages", {"to": f"+346113000{i:02d}", "text": text, "modem": modem}
            )
            assert status == 202, body
            accepted.append(body)
        assert [m["segments"] for m in accepted] == [1, 1, 1, 2, 1, 1, 1, 1, 1]
        # Both third parts in their modems (the windows are full with them): Y's port goes,
        # its part becomes unconfirmed, then the daemon dies with X's part in flight.
        await x.wait_event("latency", count=3, timeout=20)
        await y.wait_event("latency", count=3, timeout=20)
        y.disconnect()
        await d.wait_for(
            f"/v1/messages/{accepted[6]['id']}", lambda m: m["status"] == "unconfirmed"
        )
        assert len(x.sent) == 2, "X's third part must still be in flight"
        d.proc.kill()
        await d.proc.wait()
    await x.wait_sent(3, timeout=5)
    await y.wait_sent(3, timeout=5)
    await y.reconnect()
    for sim in (x, y):
        sim.set_fault(latency=(0.05, 0.05))
    async with running_daemon(config) as d:
        for msg in accepted:
            await d.wait_for(
                f"/v1/messages/{msg['id']}",
                lambda b: b["status"] in ("delivered", "unconfirmed"),
                within=90,
            )
        statuses = [(await d.call("GET", f"/v1/messages/{m['id']}"))[1]["status"] for m in accepted]
    assert [i for i, s in enumerate(statuses) if s == "unconfirmed"] == [2, 6]
    assert [(r.recipient[-2:], r.part) for r in x.sent] == [
        ("00", 1),
        ("01", 1),
        ("02", 1),
        ("03", 1),
        ("03", 2),
    ]
    assert [r.recipient[-2:] for r in y.sent] == ["04", "05", "06", "07", "08"]
    assert most_in_any_window(x.sent, 60) == 3
    assert most_in_any_window(y.sent, 60) == 3
