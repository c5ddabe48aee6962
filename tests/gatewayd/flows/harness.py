"""A flow engine over a real Gateway with the core's fake modems and a manual clock.

The gateway's store and the flow store are both SQLite, or both PostgreSQL (a fresh schema)
when :data:`DATABASE` names one: ``conftest.py`` runs every test using :func:`start_flows`
on each (the flows read the core's tables, so the two always share one database).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from drivers.clock import ManualClock
from drivers.pdu import StatusReport, decode, encode_status_report
from gatewayd.config import FlowsConfig, KeywordConfig
from gatewayd.core import Gateway
from gatewayd.flows import EventOutcome, FlowEngine, FlowSet, load_flows, parse_event
from gatewayd.store.flows_base import FlowStore
from gatewayd.store.flows_postgres import PostgresFlowStore
from gatewayd.store.flows_sqlite import SqliteFlowStore
from gatewayd.store.postgres import PostgresStore
from tests.gatewayd.core.fakes import FakeModem, Harness, Sent, config, modem_config, start

EXAMPLE_FLOWS = Path(__file__).resolve().parents[3] / "config" / "flows.toml"
ES = "+34600000001"
BASE = "https://go.example.com"
# The PostgreSQL DSN the next start_flows uses (set per test by conftest.py); None: SQLite.
DATABASE: str | None = None


def settings(**kwargs: Any) -> FlowsConfig:
    """Flows settings for tests: a recognisable brand and base URL, and no minimum gap
    between messages unless a test sets one (the cap test does)."""
    values: dict[str, Any] = {"brand": "Tienda", "public_base_url": BASE, "min_gap_seconds": 0}
    values |= kwargs
    return FlowsConfig(**values)


@dataclass
class FlowHarness:
    """The gateway harness plus the engine; :meth:`advance` runs due steps on the way."""

    h: Harness
    engine: FlowEngine
    store: FlowStore
    database: str  # the SQLite file or the PostgreSQL DSN both stores use

    @property
    def postgres(self) -> bool:
        return self.database.startswith("postgresql://")

    @property
    def clock(self) -> ManualClock:
        return self.h.clock

    @property
    def modem(self) -> FakeModem:
        return self.h.modems["m1"]

    @property
    def sends(self) -> list[Sent]:
        return self.modem.sends

    def texts(self, to: str | None = None) -> list[str]:
        return [s.text for s in self.sends if to is None or s.recipient == to]

    async def rows(self, sql: str, *params: Any) -> list[Any]:
        """Rows of a query written for SQLite (``?`` marks), on either database."""
        if isinstance(self.store, PostgresFlowStore):
            n = iter(range(1, 100))
            pg_sql = "".join(f"${next(n)}" if ch == "?" else ch for ch in sql)
            return await self.store._all(pg_sql, *params)
        assert isinstance(self.store, SqliteFlowStore)
        return await self.store._all(sql, params)

    async def reopen_store(self) -> FlowStore:
        """Close the flow store and open a new one on the same database (a restart)."""
        await self.store.close()
        self.store = flow_store(self.database)
        await self.store.open()
        return self.store

    async def post(self, body: dict[str, Any]) -> EventOutcome:
        """Post an event as the API would, then run what is due and let the modem send."""
        event = parse_event(body, region="ES", now=self.clock.now())
        outcome = await self.engine.post_event(event)
        await self.settle()
        return outcome

    async def emit(self, type: str, **kwargs: Any) -> EventOutcome:
        """Post an event of ``type`` happening now (see :func:`event` for the keywords)."""
        return await self.post(event(type, at=self.clock.now(), **kwargs))

    async def settle(self) -> None:
        """Run due steps and wait until the gateway has sent what is due."""
        await self.engine.settle_inbound()
        await self.engine.run_due()
        await self.h.idle()

    async def advance(self, seconds: float) -> None:
        """Move the clock, stopping at every due step and every gateway deadline on the way."""
        target = self.clock.now() + timedelta(seconds=seconds)
        while True:
            await self.settle()
            due = await self.store.next_due()
            if due is None or due > target:
                break
            await self._move_to(due)
        await self._move_to(target)
        await self.settle()

    async def _move_to(self, when: datetime) -> None:
        # With messages queued, stop at every gateway deadline so sends carry exact times;
        # with none, jump (the gateway's hourly sweep has nothing to do over weeks).
        if self.h.gateway.queue_depth():
            await self.h.advance(max((when - self.clock.now()).total_seconds(), 0.0))
        else:
            await self.clock.advance_to(when)
            await self.h.idle()

    async def deliver(self, sent: Sent) -> None:
        """The network's delivery report for one sent SMS."""
        rep = decode(
            encode_status_report(
                sent.mr,
                sent.recipient,
                scts=self.clock.now(),
                discharge_time=self.clock.now(),
                status=0,
            )
        )
        assert isinstance(rep, StatusReport)
        await self.modem.report(rep)

    async def close(self) -> None:
        await self.engine.stop()
        await self.store.close()
        await self.h.close()


async def start_flows(
    tmp_path: Path,
    clock: ManualClock,
    flows: FlowSet | None = None,
    flow_settings: FlowsConfig | None = None,
) -> FlowHarness:
    cfg = config(
        tmp_path,
        modem_config("m1"),
        keywords=KeywordConfig(stop_reply="Baja confirmada."),
    )
    modem = FakeModem("m1", "SIM1", clock)
    if DATABASE is None:
        h = await start(cfg, clock, [modem])
        database = cfg.database
    else:
        database = DATABASE
        # Workers sleep until the next due time (a NOTIFY wakes them for new work), as
        # the SQLite gateway's do: the manual clock then stops at exact send times.
        core = PostgresStore(
            database, webhook_url=cfg.webhooks.url, node="test", poll_seconds=3600.0
        )
        await core.open()
        gateway = Gateway(cfg, core, clock=clock, modems=[modem])
        await gateway.start()
        h = Harness(gateway, core, clock, {modem.name: modem})  # type: ignore[arg-type]
        await h.idle()
    store = flow_store(database)
    await store.open()
    engine = FlowEngine(
        h.gateway,
        store,
        flows or load_flows(EXAMPLE_FLOWS),
        flow_settings or settings(),
        clock=clock,
    )
    engine.listen()
    return FlowHarness(h, engine, store, database)


def flow_store(database: str) -> FlowStore:
    """The (unopened) flow store on ``database``: the test's node is "test"."""
    if database.startswith("postgresql://"):
        return PostgresFlowStore(database, node="test")
    return SqliteFlowStore(database)


_SEQ = iter(range(1, 1_000_000))


def event(
    type: str,
    *,
    at: datetime,
    order: str = "O-1",
    customer: str = "c-1",
    phone: str = ES,
    items: Sequence[dict[str, Any]] | None = None,
    marketing: bool = True,
    locale: str = "es_ES",
    timezone: str | None = None,
    total: str = "89.90",
    with_order: bool = True,
    **order_fields: Any,
) -> dict[str, Any]:
    """An event body as a shop would post it."""
    cust: dict[str, Any] = {
        "id": customer,
        "phone": phone,
        "name": "Ana García",
        "locale": locale,
        "consent": {
            "transactional": True,
            "marketing": marketing,
            "source": "checkout",
            "at": "2026-01-01T10:00:00Z",
        },
    }
    if timezone is not None:
        cust["timezone"] = timezone
    body: dict[str, Any] = {
        "type": type,
        "event_id": f"evt-{next(_SEQ)}",
        "occurred_at": at.isoformat(),
        "customer": cust,
    }
    if with_order:
        body["order"] = {
            "id": order,
            "items": [dict(i) for i in (items if items is not None else [COFFEE_MACHINE])],
            "total": total,
            "currency": "EUR",
            **order_fields,
        }
    return body


COFFEE_MACHINE = {
    "sku": "CAF-01",
    "name": "Cafetera Express",
    "category": "electronics",
    "kind": "physical",
    "qty": 1,
    "price": "89.90",
}
EBOOK = {
    "sku": "EB-7",
    "name": "Guia del cafe",
    "category": "books",
    "kind": "digital",
    "qty": 1,
    "price": "9.90",
}
CAPSULES = {
    "sku": "CAP-30",
    "name": "Capsulas x30",
    "category": "coffee",
    "kind": "physical",
    "qty": 1,
    "price": "9.95",
    "usage_days": 30,
}
