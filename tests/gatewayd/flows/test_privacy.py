"""Privacy: export everything about a customer; erase leaves no number or text in the
database file (WAL included) while their opt-out still blocks the number; retention."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from drivers.clock import ManualClock
from gatewayd.api.app import create_app
from gatewayd.api.keys import ApiSettings, ApiState
from gatewayd.core import OptedOut, SubmitRequest
from gatewayd.store.numbers import erased
from tests.gatewayd.flows.harness import ES, FlowHarness, settings, start_flows

TOKEN = "t" * 32
DAY = 86_400.0


def database_bytes(tmp_path: Path) -> bytes:
    """The database file and its WAL (and shm), after a checkpoint, as one byte string."""
    db = sqlite3.connect(tmp_path / "gw.db")
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("gw.db"))


async def database_rows(fh: FlowHarness) -> bytes:
    """Every row of every table of the test's PostgreSQL schema, as text."""
    tables = await fh.rows("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    assert len(tables) > 20  # the schema of the test (search_path), not an empty one
    rows = [r for t in tables for r in await fh.rows(f'SELECT x::text FROM "{t[0]}" x')]
    return "\n".join(str(r[0]) for r in rows).encode()


@pytest.fixture
async def api(tmp_path: Path, clock: ManualClock) -> AsyncIterator[tuple[FlowHarness, Any]]:
    fh = await start_flows(tmp_path, clock, flow_settings=settings(retention_days=30))
    state = ApiState(ApiSettings.from_config(fh.h.gateway.config, (TOKEN.encode(),)))
    app = create_app(
        fh.h.gateway,
        failures=fh.h.store,
        state=state,
        clock=clock,
        max_body_bytes=65536,
        flows=fh.engine,
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(base_url=str(server.make_url("/")), headers=headers) as s:
        try:
            yield fh, s
        finally:
            await server.close()
            await fh.close()


async def test_export_then_erase_leaves_no_number_or_text_and_the_optout_still_blocks(
    tmp_path: Path, api: tuple[FlowHarness, Any]
) -> None:
    fh, s = api
    await fh.emit("order.placed")
    await fh.modem.wait_sends(1)
    await fh.modem.receive_text(ES, "Hola, soy Ana: ¿cuándo llega?", fh.clock.now())
    await fh.modem.receive_text(ES, "BAJA", fh.clock.now())
    await fh.settle()
    await fh.modem.wait_sends(2)  # the STOP confirmation

    async with s.get("/v1/customers/c-1/export") as r:
        assert r.status == 200
        data = await r.json()
    assert data["profile"]["phone"] == ES
    assert data["profile"]["name"] == "Ana García"
    assert data["consents"]["marketing"] is True
    assert [o["id"] for o in data["orders"]] == ["O-1"]
    texts = [m["text"] for m in data["messages"]]
    assert any("Cafetera Express" in t for t in texts)
    assert "Hola, soy Ana: ¿cuándo llega?" in [i["text"] for i in data["inbound"]]
    assert [(o["number"], o["scope"]) for o in data["optouts"]] == [(ES, "all")]
    assert any(e["what"] == "sent" for e in data["timeline"])
    assert "clicks" in data

    async with s.delete("/v1/customers/c-1") as r:
        assert r.status == 204
    async with s.delete("/v1/customers/nobody") as r:
        assert r.status == 404

    # The opt-out survives: in the store under the hash, and for the gateway as after a
    # restart (its opt-out map reloaded from the store).
    assert await fh.store.optout_scope(ES) == "all"
    gateway = fh.h.gateway
    gateway._optouts.clear()
    gateway._optouts.update(await fh.h.store.optouts())
    assert set(gateway._optouts) == {erased(ES)}
    with pytest.raises(OptedOut):
        await gateway.submit(SubmitRequest(to=ES, text="¿Sigues ahí?"))

    async with s.get("/v1/customers/c-1/export") as r:
        after = await r.json()
    assert after["profile"]["phone"] == erased(ES)
    assert after["profile"]["name"] is None
    assert all(m["text"] == "" for m in after["messages"])

    # PostgreSQL: every row of every table (old row versions wait for vacuum: no file check).
    blobs = await database_rows(fh) if fh.postgres else database_bytes(tmp_path)
    for secret in (ES, ES[1:], ES[3:], "Cafetera", "Hola, soy Ana", "Ana Garc", "Baja confirmada"):
        assert secret.encode() not in blobs, secret
        assert secret.encode("utf-16-le") not in blobs, secret


async def test_retention_purges_old_texts_and_keeps_the_counts(
    api: tuple[FlowHarness, Any],
) -> None:
    fh, _ = api
    await fh.emit("order.placed")
    await fh.modem.wait_sends(1)
    await fh.modem.receive_text(ES, "Gracias", fh.clock.now())
    await fh.settle()
    assert await fh.engine.purge_expired_texts() == (0, 0)  # not 30 days old yet
    await fh.advance(31 * DAY)
    assert await fh.engine.purge_expired_texts() == (1, 1)
    rows = await fh.rows("SELECT text, status FROM messages ORDER BY seq")
    assert (rows[0]["text"], rows[0]["status"]) == ("", "sent")  # the confirmation, 31 days old
    assert rows[1]["text"].startswith("Tienda: Ana, hace un mes")  # day 30: kept
    inbound = await fh.rows("SELECT text FROM inbound_messages")
    assert [r["text"] for r in inbound] == [""]
