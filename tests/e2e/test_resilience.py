"""The real daemon when a modem vanishes mid-queue and when it is killed with SIGKILL.

The oracle is the simulator's own per-SIM send log: what left each SIM, whatever the daemon
believes. The rules checked are gatewayd.core.dispatch's (DESIGN: unknown outcomes,
multipart and failover): a part whose Ctrl-Z was written but whose answer never came is
``unconfirmed`` and never resent (the default, at-most-once); a multipart message cut off
on its SIM is resent whole on another SIM with a new concatenation reference and marked
``stray_part_possible``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from drivers.clock import SystemClock
from drivers.sim import SentRecord, SimModem, SimNetwork
from tests.e2e.daemon import Running, running_daemon, write_config
from tests.e2e.test_limits import most_in_any_window

FINAL = frozenset({"delivered", "failed", "expired", "cancelled", "unconfirmed"})
LONG = "recogida disponible en tienda hasta el viernes a las ocho. " * 3  # 2 GSM-7 parts


@pytest.fixture
async def net() -> AsyncIterator[SimNetwork]:
    network = SimNetwork(clock=SystemClock(), seed=11, default_handset={"report_delay": 0.05})
    yield network
    await network.close()


def recipient(i: int) -> str:
    return f"+3461120{i:04d}"


def text_of(i: int) -> str:
    # Every third message has two parts; one recipient per message identifies its parts.
    return f"Pedido {i}: " + (LONG if i % 3 == 0 else "ha salido del almacén")


async def submit_all(
    d: Running, count: int, start: int = 0, text: Callable[[int], str] = text_of
) -> dict[str, dict[str, Any]]:
    """Submit messages ``start`` to ``count - 1``; returns the 202 bodies by recipient."""
    accepted = {}
    for i in range(start, count):
        status, body = await d.call("POST", "/v1/messages", {"to": recipient(i), "text": text(i)})
        assert status == 202, body
        accepted[recipient(i)] = body
    return accepted


def final(msg: dict[str, Any]) -> bool:
    """No more change is coming: a final status, or `sent` with every report in or given up.

    A report the network sends while the modem's port is gone is lost with `+CDS` routing;
    the part then becomes `report_timeout` (still sent, never failed: DESIGN, reports).
    """
    if msg["status"] == "sent":
        return all(p["status"] in ("delivered", "report_timeout") for p in msg["parts"])
    return msg["status"] in FINAL


async def settled(
    d: Running, ids: list[str], done: Callable[[dict[str, Any]], bool] = final
) -> dict[str, Any]:
    """Wait until ``done`` holds for every message of ``ids``; the messages by id."""
    wanted = set(ids)

    def all_done(page: Any) -> bool:
        seen = [m for m in page["items"] if m["id"] in wanted]
        return len(seen) == len(wanted) and all(done(m) for m in seen)

    try:
        page = await d.wait_for("/v1/messages?limit=500", all_done, within=30)
    except AssertionError:
        _, page = await d.call("GET", "/v1/messages?limit=500")
        statuses = {
            m["to"]: [m["status"], *(p["status"] for p in m["parts"])]
            for m in page["items"]
            if m["id"] in wanted
        }
        raise AssertionError(f"not settled: {statuses}") from None
    return {m["id"]: m for m in page["items"] if m["id"] in wanted}


def by_recipient(records: list[SentRecord]) -> dict[str, list[SentRecord]]:
    out: dict[str, list[SentRecord]] = defaultdict(list)
    for r in records:
        out[r.recipient].append(r)
    return out


def one_whole_copy(records: list[SentRecord], parts: int) -> bool:
    """``records`` are exactly one copy of a ``parts``-part message: one SIM, one reference."""
    return (
        sorted(r.part for r in records) == list(range(1, parts + 1))
        and all(r.parts == parts for r in records)
        and len({(r.iccid, r.concat_ref) for r in records}) == 1
    )


async def in_flight_then_vanish(modem: SimModem, after: int, *, first_of_many: bool) -> None:
    """Once ``modem`` sent ``after`` parts, pull its port while a chosen part is in flight.

    ``first_of_many``: cut part 1 of a multipart message, else a message's last part. The
    +CMGS length tells them apart here (single parts and last parts are short). The
    simulator logs ``latency`` after it read the PDU and Ctrl-Z, before it answers: the
    daemon has written Ctrl-Z and waits for ``+CMGS``, so the outcome becomes unknown.
    """
    await modem.wait_sent(after, timeout=20)
    seen = sum(1 for e in modem.events if e.kind == "command" and "+CMGS=" in e.detail)
    while True:
        seen += 1
        event = await modem.wait_event("command", count=seen, contains="+CMGS=", timeout=20)
        if (int(event.detail.partition("=")[2]) > 100) == first_of_many:
            break
    latencies = sum(1 for e in modem.events if e.kind == "latency")
    await modem.wait_event("latency", count=latencies + 1, timeout=20)
    modem.disconnect()


@pytest.mark.parametrize(
    ("transport", "cut"), [("pty", "first of two parts"), ("tcp", "last part")]
)
async def test_failover_when_a_modem_vanishes_mid_queue(
    net: SimNetwork, tmp_path: Path, transport: str, cut: str
) -> None:
    link = str(tmp_path / "modem-a") if transport == "pty" else None
    a = await net.add_modem(
        profile="simcom", transport=transport, latency=(0.2, 0.2), link_path=link
    )
    b = await net.add_modem(profile="quectel", transport="tcp", latency=(0.2, 0.2))
    config = write_config(
        tmp_path,
        [a.url, b.url],
        "[sending]\nfailover_wait_seconds = 1.0\nreport_timeout_seconds = 3.0\n",
    )
    async with running_daemon(config) as d:
        await d.wait_for(
            "/v1/modems", lambda body: all(m["state"] == "ready" for m in body["modems"])
        )
        first_of_many = cut.startswith("first")
        # Cutting a part 1 needs multipart work left on SIM A whichever way the two SIMs
        # share the queue: then every message has two parts.
        texts = (lambda i: f"Pedido {i}: {LONG}") if first_of_many else text_of
        accepted = await submit_all(d, 20, text=texts)
        ids = [m["id"] for m in accepted.values()]
        await in_flight_then_vanish(a, after=3, first_of_many=first_of_many)
        disconnected_at = len(a.sent)
        await settled(d, ids)
        # The port comes back: the modem serves again, its stored reports are read.
        await a.reconnect()
        await d.wait_for(
            "/v1/modems", lambda body: all(m["state"] == "ready" for m in body["modems"])
        )
        final = await settled(d, ids)

        # The simulator finished the part it was given before the port went: it left SIM A.
        late = a.sent[disconnected_at:]
        assert len(late) == 1, late
        cut_part = late[0]
        assert (cut_part.part == 1 < cut_part.parts) == cut.startswith("first"), cut_part
        logs = by_recipient(net.sent)
        for to, body in accepted.items():
            msg = final[body["id"]]
            sent = logs[to]
            segments = body["segments"]
            if to != cut_part.recipient:
                # Untouched by the fault: each part exactly once, from one SIM, and delivered
                # unless its report reached SIM A while its port was gone.
                if msg["status"] == "sent":
                    assert msg["sim"] == a.iccid
                    assert "report_timeout" in {p["status"] for p in msg["parts"]}
                else:
                    assert msg["status"] == "delivered", msg
                assert one_whole_copy(sent, segments), sent
                assert not msg["stray_part_possible"]
            elif cut_part.part == segments:
                # Its last (or only) part's outcome is unknown: at-most-once, the part is
                # unconfirmed and never resent, and so is the message; nothing went twice.
                assert msg["status"] == "unconfirmed", msg
                assert [p["status"] for p in msg["parts"]][-1] == "unconfirmed", msg
                assert {p["status"] for p in msg["parts"][:-1]} <= {
                    "delivered",
                    "report_timeout",
                }, msg
                assert one_whole_copy(sent, segments), sent
                assert sent[-1] == cut_part
                assert not msg["stray_part_possible"]
            else:
                # Cut before its last part: after failover_wait_seconds the whole message went
                # again from SIM B with a new reference; the first attempt left strays.
                first = [r for r in sent if r.iccid == a.iccid]
                again = [r for r in sent if r.iccid == b.iccid]
                assert first
                assert first[-1] == cut_part
                assert one_whole_copy(again, segments), again
                assert again[0].concat_ref != cut_part.concat_ref
                assert msg["status"] == "delivered", msg
                assert msg["stray_part_possible"]
                assert msg["sim"] == b.iccid

        # Nothing earlier goes again: a new message for SIM A is the only thing it sends.
        before = len(net.sent)
        status, after = await d.call(
            "POST", "/v1/messages", {"to": recipient(99), "text": "De vuelta", "modem": "m1"}
        )
        assert status == 202, after
        await d.wait_for(f"/v1/messages/{after['id']}", lambda m: m["status"] == "delivered")
        assert [(r.iccid, r.recipient) for r in net.sent[before:]] == [(a.iccid, recipient(99))]
        for mid in ids:
            _, again = await d.call("GET", f"/v1/messages/{mid}")
            assert again["status"] == final[mid]["status"]


@pytest.mark.parametrize("rule", ["at_most_once", "at_least_once"])
async def test_sigkill_mid_run_then_restart_on_the_same_database(
    net: SimNetwork, tmp_path: Path, rule: str
) -> None:
    # Quectel routes status reports to storage (+CDSI): reports that arrive while no daemon
    # runs wait in the modem for the next start's sweep.
    sim = await net.add_modem(profile="quectel", transport="pty", latency=(0.3, 0.3))
    config = write_config(
        tmp_path, [sim.url], f'[sending]\nunknown_outcome_transactional = "{rule}"\n'
    )
    config.write_text(config.read_text().replace("max_per_minute = 100", "max_per_minute = 8"))
    three_parts = "Pedido 500: " + LONG * 2  # 3 GSM-7 parts, sent first
    async with running_daemon(config) as d:
        status, first = await d.call(
            "POST", "/v1/messages", {"to": recipient(0), "text": three_parts}
        )
        assert (status, first["segments"]) == (202, 3), first
        accepted = {recipient(0): first, **(await submit_all(d, 12, start=1))}
        # SIGKILL while part 2 of 3 is in flight: Ctrl-Z written, no +CMGS read.
        await sim.wait_sent(1, timeout=20)
        latencies = sum(1 for e in sim.events if e.kind == "latency")
        await sim.wait_event("latency", count=latencies + 1, timeout=20)
        d.proc.kill()
        await d.proc.wait()
    # The simulator still sends the part it was given (and answers a port nobody reads).
    await sim.wait_sent(2, timeout=5)
    ids = [m["id"] for m in accepted.values()]
    async with running_daemon(config) as d:
        # The limit survives the restart: 8 parts in the first minute across both lives,
        # then the queue waits for the window (the test does not wait that minute).
        await sim.wait_sent(8, timeout=20)
        waiting = await d.wait_for(
            "/v1/messages?status=queued&limit=500",
            lambda b: len(b["items"]) + len(by_recipient(sim.sent)) == len(ids),
        )
        # The SIM has no room left this minute, and only the waiting messages are pending.
        await d.wait_for(
            "/v1/modems",
            lambda b: (
                b["modems"][0]["headroom"]["minute"] == 0
                and b["modems"][0]["queue_depth"] == len(waiting["items"])
            ),
        )
        for msg in waiting["items"]:
            status, body = await d.call("DELETE", f"/v1/messages/{msg['id']}")
            assert (status, body["status"]) == (200, "cancelled"), body
        final_ = await settled(d, ids)

    assert most_in_any_window(net.sent, 60) <= 8
    assert len(sim.sent) == 8
    logs = by_recipient(sim.sent)
    cut = final_[first["id"]]
    cut_log = logs[recipient(0)]
    assert not cut["stray_part_possible"]
    assert len({r.concat_ref for r in cut_log}) == 1
    if rule == "at_most_once":
        # The default: part 2's outcome was unknown -> unconfirmed, never resent; the same
        # SIM came back at once and continued with part 3.
        assert cut["status"] == "unconfirmed", cut
        assert [p["status"] for p in cut["parts"]] == ["delivered", "unconfirmed", "delivered"]
        assert one_whole_copy(cut_log, 3)
    else:
        # Configured at-least-once: part 2 went again (the handset may hold it twice), then 3.
        assert cut["status"] == "delivered", cut
        assert [r.part for r in cut_log] == [1, 2, 2, 3]
    for to, body in accepted.items():
        msg = final_[body["id"]]
        if to == recipient(0):
            continue
        if msg["status"] == "cancelled":
            assert to not in logs
        else:
            assert msg["status"] == "delivered", msg
            assert one_whole_copy(logs[to], body["segments"]), logs[to]
    assert sum(m["status"] == "cancelled" for m in final_.values()) == len(waiting["items"]) > 0
